#!/usr/bin/env bash
# The results study of docs/results.md: beside the main job's one
# random-capacity model (runs/main, from scripts/main.sh), trains with the
# same recipe (scripts/main.ini, same number of steps) a dense `tiny`
# (--capacity fixed:1), smaller dense models (D 48 and D 32) and a MoNE model
# at fixed e_c 0.5; evaluates every model on the test split and plots top-1
# against GFLOPs per image to docs/accuracy-vs-gflops.png.
#
# About 25 minutes on the 2-core VM (two trainings at a time, one thread
# each). A model already trained is resumed or skipped (--resume auto).
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

train() {  # name, extra options
  local name=$1; shift
  "$mone" train --config "$root/scripts/main.ini" --data "$data" --run-dir "$study/$name" --threads 1 "$@" \
    > "$study/$name.log" 2>&1 || { echo "study.sh: error: training $name failed, see $study/$name.log" >&2; return 1; }
  echo "trained $name"
}
# Two at a time: each is single-threaded, and small models scale badly over threads.
train dense --capacity fixed:1 & first=$!
train dense-d48 --capacity fixed:1 --dim 48 & second=$!
wait $first && wait $second
train fixed-0.5 --capacity fixed:0.5 & first=$!
train dense-d32 --capacity fixed:1 --dim 32 & second=$!
wait $first && wait $second

# The newest test-split report of a run directory (mone eval never
# overwrites one: a repeated evaluation is test-step-N.2.csv, ...).
test_report() { ls -t "$1"/eval/test-step-*.csv | head -n 1; }
"$mone" eval --data "$data" --checkpoint "$main_run" --split test --capacities "$capacities" > /dev/null
"$mone" eval --data "$data" --checkpoint "$study/fixed-0.5" --split test --capacities "$capacities" > /dev/null
for name in dense dense-d48 dense-d32; do
  "$mone" eval --data "$data" --checkpoint "$study/$name" --split test --capacities 1 > /dev/null
done
/usr/bin/python3 "$root/scripts/plot_study.py" --out "$root/docs/accuracy-vs-gflops.png" \
  "MoNE, random e_c (one model)=$(test_report "$main_run")" \
  "MoNE, trained at e_c 0.5=$(test_report "$study/fixed-0.5")" \
  "dense D64=$(test_report "$study/dense")" \
  "dense D48=$(test_report "$study/dense-d48")" \
  "dense D32=$(test_report "$study/dense-d32")"
