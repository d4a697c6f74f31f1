#!/usr/bin/env bash
# The longer study of docs/results.md: does the one model's gap to the
# specialised models close with training time? Trains, with the main recipe
# (scripts/main.ini) stretched to 25 epochs (21485 steps of 64; the dense
# warm-up stays the first quarter), the dense D64, the MoNE model at fixed
# e_c 0.5, the dense D32 (about the FLOPs of e_c 0.2) and the best one-model
# recipe of the 8000-step study (the sandwich rule with in-place
# distillation), two at a time in the background, one thread each; then
# evaluates them on the test split and plots them.
#
# About 5 core-hours on the 2-core VM, about 3 hours from start to end (the
# sandwich recipe runs four passes per step, 3 to 4x a dense step beside
# another run; 2026-12-03): start it and come back (`tail -f runs/long/*.log`).
# A model already trained is resumed or skipped (--resume auto), so the
# script can be run again after an interruption.
# Environment: MONE_LONG_DIR (default runs/long), MONE_LONG_STEPS (21485).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/blas-env.sh"
mone="$root/build/trainer/mone"
data="$root/datasets/fashion-mnist"
long="${MONE_LONG_DIR:-$root/runs/long}"
steps="${MONE_LONG_STEPS:-21485}"
capacities=0.2,0.3,0.4,0.5,0.6,0.8,1.0
mkdir -p "$long"

train() {  # name, extra options
  local name=$1; shift
  "$mone" train --config "$root/scripts/main.ini" --data "$data" --run-dir "$long/$name" --threads 1 \
    --steps "$steps" --full-capacity-steps $((steps / 4)) --eval-every 5000 --log-every 1 --progress lines "$@" \
    > "$long/$name.log" 2>&1 || { echo "long_study.sh: error: training $name failed, see $long/$name.log" >&2; return 1; }
  echo "trained $name"
}
# The sandwich recipe is the long one: the others share the second core.
train sandwich-distill --capacity sandwich --distill & sandwich=$!
{ train dense --capacity fixed:1 && train fixed-0.5 --capacity fixed:0.5 &&
  train dense-d32 --capacity fixed:1 --dim 32; } & others=$!
wait $sandwich && wait $others

test_report() { ls -t "$1"/eval/test-step-*.csv | head -n 1; }
for name in sandwich-distill fixed-0.5; do
  "$mone" eval --data "$data" --checkpoint "$long/$name" --split test --capacities "$capacities" > /dev/null
done
for name in dense dense-d32; do
  "$mone" eval --data "$data" --checkpoint "$long/$name" --split test --capacities 1 > /dev/null
done
/usr/bin/python3 "$root/scripts/plot_study.py" --out "$long/accuracy-vs-gflops.png" \
  --title "Fashion-MNIST test after $steps steps" \
  "MoNE, sandwich + distillation=$(test_report "$long/sandwich-distill")" \
  "MoNE, trained at e_c 0.5=$(test_report "$long/fixed-0.5")" \
  "dense D64=$(test_report "$long/dense")" \
  "dense D32=$(test_report "$long/dense-d32")"
