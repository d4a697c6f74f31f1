#!/usr/bin/env bash
# The results study of docs/results.md: beside the main job's one
# random-capacity model (runs/main, from scripts/main.sh), trains with the
# same recipe (scripts/main.ini, same 8000 steps) dense `tiny` models of
# width 64, 48 and 32 (--capacity fixed:1), a MoNE model at fixed e_c 0.5,
# the one-model recipes with in-place distillation (random e_c + --distill;
# --capacity sandwich + --distill) and the random-router ablation; evaluates
# every model on the test split, plots top-1 against GFLOPs per image to
# docs/accuracy-vs-gflops.png and prints the accuracy and training-cost
# tables.
#
# About 75 minutes on the 2-core VM (two trainings at a time, one thread
# each; the distilled recipes run 2 and 4 passes per step). A model already
# trained is resumed or skipped (--resume auto).
# Environment: MONE_STUDY_DIR (default runs/study), MONE_MAIN_RUN (runs/main).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/blas-env.sh"
mone="$root/build/trainer/mone"
data="$root/datasets/fashion-mnist"
study="${MONE_STUDY_DIR:-$root/runs/study}"
main_run="${MONE_MAIN_RUN:-$root/runs/main}"
capacities=0.2,0.3,0.4,0.5,0.6,0.8,1.0
[ -f "$main_run/config.ini" ] || { echo "study.sh: error: no main run in $main_run; run scripts/main.sh first" >&2; exit 1; }
mkdir -p "$study"

train() {  # name, extra options; every step logged, for the cost table
  local name=$1; shift
  "$mone" train --config "$root/scripts/main.ini" --data "$data" --run-dir "$study/$name" --threads 1 \
    --log-every 1 --progress lines "$@" > "$study/$name.log" 2>&1 \
    || { echo "study.sh: error: training $name failed, see $study/$name.log" >&2; return 1; }
  echo "trained $name"
}
# Two at a time: each is single-threaded, and small models scale badly over threads.
running=0
queue() {
  if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
  train "$@" & running=$((running + 1))
}
queue sandwich-distill --capacity sandwich --distill
queue random-distill --capacity random --distill
queue dense --capacity fixed:1
queue random-router --capacity random --router random
queue fixed-0.5 --capacity fixed:0.5
queue dense-d48 --capacity fixed:1 --dim 48
queue dense-d32 --capacity fixed:1 --dim 32
while [ "$running" -gt 0 ]; do wait -n; running=$((running - 1)); done

# The newest test-split report of a run directory (mone eval never
# overwrites one: a repeated evaluation is test-step-N.2.csv, ...).
test_report() { ls -t "$1"/eval/test-step-*.csv | head -n 1; }
"$mone" eval --data "$data" --checkpoint "$main_run" --split test --capacities "$capacities" > /dev/null
for name in fixed-0.5 random-distill sandwich-distill random-router; do
  "$mone" eval --data "$data" --checkpoint "$study/$name" --split test --capacities "$capacities" > /dev/null
done
for name in dense dense-d48 dense-d32; do
  "$mone" eval --data "$data" --checkpoint "$study/$name" --split test --capacities 1 > /dev/null
done
# torchvision's VisionTransformer at the same size and recipe (docs/results.md): quoted.
/usr/bin/python3 "$root/scripts/plot_study.py" --out "$root/docs/accuracy-vs-gflops.png" \
  --quoted "torchvision ViT D64 (quoted)=0.01672:89.20" \
  "MoNE, random e_c (one model)=$(test_report "$main_run")" \
  "MoNE, random e_c + distillation=$(test_report "$study/random-distill")" \
  "MoNE, sandwich + distillation=$(test_report "$study/sandwich-distill")" \
  "MoNE, random router=$(test_report "$study/random-router")" \
  "MoNE, trained at e_c 0.5=$(test_report "$study/fixed-0.5")" \
  "dense D64=$(test_report "$study/dense")" \
  "dense D48=$(test_report "$study/dense-d48")" \
  "dense D32=$(test_report "$study/dense-d32")"
echo
/usr/bin/python3 "$root/scripts/training_cost.py" "MoNE, random e_c (main job, 2 ranks)=$main_run" \
  "random e_c + distillation=$study/random-distill" "sandwich + distillation=$study/sandwich-distill" \
  "random router=$study/random-router" "fixed e_c 0.5=$study/fixed-0.5" "dense D64=$study/dense" \
  "dense D48=$study/dense-d48" "dense D32=$study/dense-d32"
