#!/usr/bin/env bash
# The README's first command writing to a file (a batch log, `> log`) gets
# one line per logged step, never the progress bar's carriage returns
# (mpirun gives rank 0 a terminal even then), and ends with the evaluation.
# A short run on a small synthetic dataset with this build:
#
#   test_main_script.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir=$1
build_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build_dir/trainer/mone" data --source synthetic --out "$work/data" --height 28 --width 28 --channels 1 \
  --count 512 --test-count 64 --val-count 64 > /dev/null
MONE_BUILD_DIR="$build_dir" MONE_DATA_DIR="$work/data" MONE_RUN_DIR="$work/run" MONE_STEPS=20 \
  "$source_dir/scripts/main.sh" > "$work/log" 2>&1 || { cat "$work/log"; echo "main.sh failed"; exit 1; }
if grep -q $'\r' "$work/log"; then
  echo "FAIL: the log holds carriage returns:"; grep -c $'\r' "$work/log"; exit 1
fi
grep -q "^step 20/20 " "$work/log" || { cat "$work/log"; echo "FAIL: no line for step 20"; exit 1; }
grep -q "test-step-00000020.csv" "$work/log" || { cat "$work/log"; echo "FAIL: no test report"; exit 1; }
echo "main.sh logged lines, no carriage returns"
