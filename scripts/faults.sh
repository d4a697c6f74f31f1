#!/usr/bin/env bash
# Fault injection: real `mone train` runs on a small synthetic dataset, hurt
# on purpose, and a check that each ends as docs/trainer.md ("Failure modes")
# says, with the last good state verified by loading it (`mone verify`) and,
# where the run can go on, resumed to the end and compared bit for bit with
# an uninterrupted run (tests/slurm/compare_runs.py).
#
#   scripts/faults.sh [--build DIR] [--repeats N] [--seed S]
#
# Cases: a full disk during a checkpoint (a 600 kB tmpfs this script mounts
# and unmounts: root only, skipped otherwise); SIGKILL at random steps and
# SIGKILL while a checkpoint is being written (N times each, the moments
# drawn from --seed); a second training on the same run directory;
# a truncated and an edited newest checkpoint. Prints a table, then
# "faults.sh: P of C cases passed (S skipped)"; exits 0 when none failed.
# About a minute with --repeats 2 on 2 cores. CTest runs it (label faults).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
repeats=2
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n 2,16p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "faults.sh: error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
mone="$build/trainer/mone"
python=${MONE_PYTHON:-/usr/bin/python3}
[ -x "$mone" ] || { echo "faults.sh: error: no $mone; build first (scripts/build.sh)" >&2; exit 2; }
source "$root/scripts/blas-env.sh"
RANDOM=$seed

work=$(mktemp -d)
mounted=
cleanup() {
  [ -z "$mounted" ] || umount -l "$mounted" 2>/dev/null
  pkill -9 -f "$work/" 2>/dev/null
  # A failed case's logs stay for a look.
  if [ "${failed:-0}" -eq 0 ]; then rm -rf "$work"; else echo "faults.sh: the failed cases' files are in $work"; fi
}
trap cleanup EXIT

"$mone" data --source synthetic --out "$work/data" --height 28 --width 28 --channels 1 --count 448 \
  --test-count 32 --val-count 64 --shard-size 128 > /dev/null || { echo "faults.sh: error: mone data failed" >&2; exit 1; }

# The small model of the trainer tests (~2 ms steps); "big" writes ~40 MB
# checkpoints, so that a kill can land inside the write.
small=(--dim 32 --depth 2 --heads 2)
big=(--dim 256 --depth 4 --heads 4)
common=(--data "$work/data" --batch 16 --threads 1 --warmup 2 --log-every 1 --eval-capacities 0.5,1 --progress lines)
train() {  # run-dir, options...
  local dir=$1; shift
  "$mone" train "${common[@]}" --run-dir "$dir" "$@"
}
# In the background, as the process $! itself (signals reach mone, not a subshell).
spawn() {  # log, run-dir, options...
  local log=$1 dir=$2; shift 2
  (exec "$mone" train "${common[@]}" --run-dir "$dir" "$@" > "$log" 2>&1) &
}
logged_step() { local n; n=$(grep -c '"type": "train"' "$1/metrics.jsonl" 2>/dev/null); echo "${n:-0}"; }
wait_for_step() {  # run-dir, step, pid
  local deadline=$((SECONDS + 120))
  while [ "$(logged_step "$1")" -lt "$2" ] && kill -0 "$3" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.01; done
}
verified() { "$mone" verify --checkpoint "$1" > "$1.verify" 2>&1; }
same_as() { "$python" "$root/tests/slurm/compare_runs.py" "$1" "$2" > "$2.compare" 2>&1; }

rows=()
passed=0 failed=0 skipped=0
record() {  # case, fault, outcome, result
  rows+=("$(printf '| %-28s | %-44s | %-58s | %-7s |' "$1" "$2" "$3" "$4")")
  case "$4" in PASS) passed=$((passed + 1)) ;; SKIP) skipped=$((skipped + 1)) ;; *) failed=$((failed + 1)) ;; esac
}

# Uninterrupted references, one per model.
train "$work/ref-small" "${small[@]}" --steps 60 --checkpoint-every 10 > "$work/ref-small.log" 2>&1 ||
  { echo "faults.sh: error: the reference run failed: $work/ref-small.log" >&2; cat "$work/ref-small.log" >&2; exit 1; }
train "$work/ref-big" "${big[@]}" --steps 24 --checkpoint-every 3 > "$work/ref-big.log" 2>&1 ||
  { echo "faults.sh: error: the reference run failed: $work/ref-big.log" >&2; exit 1; }

# 1. A full disk during the second checkpoint.
if mkdir -p "$work/full" && mount -t tmpfs -o size=600k tmpfs "$work/full" 2>/dev/null; then
  mounted="$work/full"
  train "$work/full/run" "${small[@]}" --steps 40 --checkpoint-every 5 --keep 5 > "$work/full.log" 2>&1
  code=$?
  tmp=$(find "$work/full" -name '*.tmp' | wc -l)
  if [ $code -eq 74 ] && [ "$tmp" -eq 0 ] && grep -q "No space left on device (it needs" "$work/full.log" &&
     verified "$work/full/run" && grep -q "takes step 5" "$work/full/run.verify"; then
    record "disk full" "600 kB tmpfs, checkpoint of step 10" "exit 74, no .tmp, step 5 verified" PASS
  else
    record "disk full" "600 kB tmpfs, checkpoint of step 10" "exit $code, $tmp .tmp files (see $work/full.log)" FAIL
  fi
  umount -l "$work/full" && mounted=
else
  record "disk full" "600 kB tmpfs" "cannot mount a tmpfs (not root?)" SKIP
fi

# 2. SIGKILL at a random step, resumed to the end.
for ((i = 1; i <= repeats; i++)); do
  dir="$work/kill-$i"
  step=$((5 + RANDOM % 50))
  spawn "$dir.log" "$dir" "${small[@]}" --steps 60 --checkpoint-every 10
  pid=$!
  wait_for_step "$dir" "$step" "$pid"
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  at=$(logged_step "$dir")
  kept="nothing to keep yet"
  ok=1
  if [ "$at" -ge 10 ]; then verified "$dir" && kept=$(grep -o 'takes step [0-9]*' "$dir.verify") || ok=0; fi
  if [ $ok -eq 1 ] && train "$dir" "${small[@]}" --steps 60 --checkpoint-every 10 >> "$dir.log" 2>&1 &&
     same_as "$work/ref-small" "$dir"; then
    record "SIGKILL at a step ($i)" "kill -9 after step $at" "$kept; resumed, bitwise equal" PASS
  else
    record "SIGKILL at a step ($i)" "kill -9 after step $at" "see $dir.log, $dir.verify, $dir.compare" FAIL
  fi
done

# 3. SIGKILL while a checkpoint is being written, resumed to the end.
for ((i = 1; i <= repeats; i++)); do
  dir="$work/kill-write-$i"
  nth=$((2 + RANDOM % 5))  # which checkpoint write (of steps 3, 6, ...) to hit
  spawn "$dir.log" "$dir" "${big[@]}" --steps 24 --checkpoint-every 3
  pid=$!
  wait_for_step "$dir" $((3 * nth)) "$pid"
  deadline=$((SECONDS + 60))
  until compgen -G "$dir/checkpoints/.step-*.tmp" > /dev/null || ! kill -0 "$pid" 2>/dev/null ||
        [ $SECONDS -ge $deadline ]; do :; done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  caught=$(compgen -G "$dir/checkpoints/.step-*.tmp" > /dev/null && echo "mid-write" || echo "after the write")
  if verified "$dir" && kept=$(grep -o 'takes step [0-9]*' "$dir.verify") &&
     train "$dir" "${big[@]}" --steps 24 --checkpoint-every 3 >> "$dir.log" 2>&1 && same_as "$work/ref-big" "$dir"; then
    record "SIGKILL in a checkpoint ($i)" "kill -9 at checkpoint $nth ($caught)" "$kept; resumed, bitwise equal" PASS
  else
    record "SIGKILL in a checkpoint ($i)" "kill -9 at checkpoint $nth ($caught)" "see $dir.log, $dir.verify, $dir.compare" FAIL
  fi
done

# 4. A second training on the same run directory.
dir="$work/concurrent"
spawn "$dir.log" "$dir" "${small[@]}" --steps 100000
pid=$!
wait_for_step "$dir" 3 "$pid"
train "$dir" "${small[@]}" --steps 10 > "$dir.second.log" 2>&1
code=$?
kill -USR1 "$pid"; wait "$pid"
first=$?
if [ $code -eq 2 ] && grep -q "is in use by another training (host .*, pid $pid," "$dir.second.log" &&
   [ $first -eq 75 ] && verified "$dir"; then
  record "concurrent start" "second mone train on the same --run-dir" "refused (exit 2, names pid $pid); first stopped, verified" PASS
else
  record "concurrent start" "second mone train on the same --run-dir" "second exit $code, first $first (see $dir.*.log)" FAIL
fi

# 5, 6. A truncated and an edited newest checkpoint: resumed from the one before.
damage_case() {  # name, how
  local name=$1 how=$2 dir="$work/$1"
  cp -r "$work/ref-small" "$dir"
  rm -f "$dir/lock"
  local newest="$dir/checkpoints/step-00000060.h5"
  if [ "$how" = truncate ]; then
    truncate -s 100000 "$newest"
  else
    "$python" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); f.attrs['consumed_samples']=10**9; f.close()" "$newest"
  fi
  # The newest is refused; the same command resumes from step 50 and ends
  # with the reference's bits (metrics past step 50 are rewritten).
  if ! verified "$newest" && verified "$dir" && grep -q "takes step 50" "$dir.verify" &&
     train "$dir" "${small[@]}" --steps 60 --checkpoint-every 10 > "$dir.log" 2>&1 && grep -q "is corrupt\|cannot read" "$dir.log" &&
     same_as "$work/ref-small" "$dir"; then
    record "$name checkpoint" "$3" "refused; step 50 verified, resumed, bitwise equal" PASS
  else
    record "$name checkpoint" "$3" "see $dir.log, $dir.verify, $dir.compare" FAIL
  fi
}
damage_case truncated truncate "step-60.h5 cut to 100 kB"
damage_case edited edit "consumed_samples 960 -> 1e9 (h5py)"

printf '| %-28s | %-44s | %-58s | %-7s |\n' case fault outcome result
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..30})" "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..60})" "---------"
printf '%s\n' "${rows[@]}"
echo "faults.sh: $passed of $((passed + failed + skipped)) cases passed ($skipped skipped, seed $seed)"
[ $failed -eq 0 ]
