#!/usr/bin/env bash
# scripts/plot_run.py on a real run: a short sandwich + distillation run on a
# small synthetic dataset, evaluated twice at two capacities, gives a PNG and
# one printed line per capacity with both evaluations; a directory without
# metrics gets one error line and a non-zero exit.
#
#   test_plot_run.sh SOURCE_DIR BUILD_DIR PYTHON
set -euo pipefail
source_dir=$1
build_dir=$2
python=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mone="$build_dir/trainer/mone"
"$mone" data --source synthetic --out "$work/data" --height 28 --width 28 --channels 1 \
  --count 256 --test-count 32 --val-count 64 > /dev/null
"$mone" train --data "$work/data" --run-dir "$work/run" --dim 32 --depth 2 --heads 2 --batch 16 --steps 6 \
  --threads 1 --eval-every 3 --eval-capacities 0.5,1 --capacity sandwich:1 --distill --log-every 1 \
  --progress lines > "$work/train.log" 2>&1 || { cat "$work/train.log"; echo "FAIL: training"; exit 1; }
"$python" "$source_dir/scripts/plot_run.py" "$work/run" --out "$work/curves.png" > "$work/out" 2>&1 \
  || { cat "$work/out"; echo "FAIL: plot_run.py"; exit 1; }
grep -q "^e_c 0.5: step 3 .*, step 6 " "$work/out" || { cat "$work/out"; echo "FAIL: no e_c 0.5 line"; exit 1; }
grep -q "^e_c 1: step 3 .*, step 6 " "$work/out" || { cat "$work/out"; echo "FAIL: no e_c 1 line"; exit 1; }
[ "$(head -c 8 "$work/curves.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] \
  || { echo "FAIL: $work/curves.png is not a PNG"; exit 1; }
mkdir "$work/empty"
if "$python" "$source_dir/scripts/plot_run.py" "$work/empty" > "$work/err" 2>&1; then
  echo "FAIL: a directory without metrics.jsonl was accepted"; exit 1
fi
grep -q "metrics.jsonl: no such file" "$work/err" || { cat "$work/err"; echo "FAIL: unclear error"; exit 1; }
echo "plot_run.py drew both evaluations of both capacities"
