#!/usr/bin/env bash
# The Mobile V-MoE study of docs/results.md ("Mobile V-MoE"): with the main
# recipe (scripts/main.ini, 8000 steps, one thread per training), a dense
# `tiny` for the super-classes, its 3 super-classes (mone superclasses), and
# four V-MoE models (3 experts in the last 2 blocks): top-1 and top-2, each
# with and without the router's super-class loss. Evaluates every model on
# the test split, writes each V-MoE model's expert-by-class table and plots
# top-1 against GFLOPs per image to docs/vmoe-accuracy-vs-gflops.png (with
# scripts/study.sh's dense D48/D32 and MoNE figures quoted from
# docs/results.md) and the per-expert class shares to
# docs/vmoe-experts-by-class.png.
#
# About 14 minutes per training on one free core of the 2-core VM (about
# 100 ms per V-MoE step), two at a time: about 45 minutes in all. A model
# already trained is resumed or skipped (--resume auto).
# Environment: MONE_VMOE_DIR (default runs/vmoe), MONE (the mone binary,
# default build/trainer/mone).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/blas-env.sh"
mone="${MONE:-$root/build/trainer/mone}"
data="${MONE_DATA:-$root/datasets/fashion-mnist}"
study="${MONE_VMOE_DIR:-$root/runs/vmoe}"
mkdir -p "$study"

# --init small: the initialisation docs/results.md's V-MoE figures were measured with.
train() {  # name, extra options
  local name=$1; shift
  "$mone" train --config "$root/scripts/main.ini" --data "$data" --run-dir "$study/$name" --threads 1 \
    --init small --progress lines "$@" > "$study/$name.log" 2>&1 ||
    { echo "vmoe_study.sh: error: training $name failed, see $study/$name.log" >&2; return 1; }
  echo "trained $name"
}

# The dense model whose validation confusion gives the super-classes
# (scripts/study.sh trains the same one as "dense").
train dense --capacity fixed:1
"$mone" superclasses --data "$data" --checkpoint "$study/dense" --groups 3 --threads 1 \
  --out "$study/superclasses-3.txt" > "$study/superclasses-3.log"

vmoe=(--arch vmoe --capacity fixed:1 --experts 3)
sc=(--superclasses "$study/superclasses-3.txt")
train vmoe-k1-sc "${vmoe[@]}" --top-k 1 "${sc[@]}" & first=$!
train vmoe-k1 "${vmoe[@]}" --top-k 1 & second=$!
wait $first && wait $second
train vmoe-k2-sc "${vmoe[@]}" --top-k 2 "${sc[@]}" & first=$!
train vmoe-k2 "${vmoe[@]}" --top-k 2 & second=$!
wait $first && wait $second

test_report() { ls "$1"/eval/test-step-*.csv | sort | tail -n 1; }
for name in dense vmoe-k1-sc vmoe-k1 vmoe-k2-sc vmoe-k2; do
  "$mone" eval --data "$data" --checkpoint "$study/$name" --split test --threads 1 > "$study/$name-test.log"
done
for name in vmoe-k1-sc vmoe-k1 vmoe-k2-sc vmoe-k2; do
  "$mone" route --data "$data" --checkpoint "$study/$name" --split test --threads 1 --out "$study/$name-route" \
    > "$study/$name-route.log"
done
/usr/bin/python3 "$root/scripts/plot_study.py" --out "$root/docs/vmoe-accuracy-vs-gflops.png" \
  --title "Fashion-MNIST test: Mobile V-MoE against dense" \
  --quoted "dense D48 (the study's, quoted)=0.00956:86.74" \
  --quoted "dense D32 (the study's, quoted)=0.00457:86.69" \
  --quoted "MoNE one model at e_c 1 (the study's, quoted)=0.01636:85.04" \
  "dense D64=$(test_report "$study/dense")" \
  "V-MoE top-1, super-class loss=$(test_report "$study/vmoe-k1-sc")" \
  "V-MoE top-1, no super-class loss=$(test_report "$study/vmoe-k1")" \
  "V-MoE top-2, super-class loss=$(test_report "$study/vmoe-k2-sc")" \
  "V-MoE top-2, no super-class loss=$(test_report "$study/vmoe-k2")"
/usr/bin/python3 "$root/scripts/plot_experts_by_class.py" --out "$root/docs/vmoe-experts-by-class.png" \
  "top-1, super-class loss=$study/vmoe-k1-sc-route/experts-by-class.csv" \
  "top-1, no super-class loss=$study/vmoe-k1-route/experts-by-class.csv" \
  "top-2, super-class loss=$study/vmoe-k2-sc-route/experts-by-class.csv" \
  "top-2, no super-class loss=$study/vmoe-k2-route/experts-by-class.csv"
