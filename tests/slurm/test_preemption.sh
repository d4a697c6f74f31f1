#!/usr/bin/env bash
# End-to-end test of slurm/train.sbatch on a real one-node Slurm cluster
# (scripts/slurm-local.sh), CTest label "slurm" (docs/slurm.md):
#
#  1. pre-emption: three identical jobs. One is sent SIGUSR1 through its
#     batch shell mid-run (scancel --signal=USR1 --batch, as a scheduler warns
#     of the end of a time slot): it stops with a checkpoint, requeues itself
#     and resumes. One is requeued by the scheduler (scontrol requeue: SIGTERM,
#     checkpoint, the scheduler restarts it). All must complete, the two
#     interrupted ones with per-step losses and final parameters bitwise
#     equal to the uninterrupted one's (compare_runs.py).
#  2. a rank killed with SIGKILL: the job must end FAILED, without a requeue
#     and within a bounded time (no hang in a collective).
#  3. the restart guard: with MAX_RESTARTS=0 a pre-empted job stops for good
#     (FAILED, exit code 75) instead of requeueing.
#
#   test_preemption.sh SOURCE_DIR BUILD_DIR [RANKS]     (RANKS: MPI ranks per job, default 2)
#
# Exit codes: 0 passed, 1 failed, 77 skipped (no Slurm here, not root, or the
# cluster cannot start; the reason is printed). The cluster is stopped and
# the working directory removed on every exit, failures included.
set -euo pipefail

source_dir=$(cd "$1" && pwd)
build_dir=$(cd "$2" && pwd)
ranks=${3:-2}
steps=${MONE_SLURM_TEST_STEPS:-300}  # ~30 ms steps at batch 16: long enough to pre-empt mid-run
python=${MONE_PYTHON:-/usr/bin/python3}
# Every wait below ends at this deadline: well inside CTest's TIMEOUT (1500 s),
# so a stuck job fails the test here, and the trap still stops the cluster.
deadline=$((SECONDS + 1200))

skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAILED: $*" >&2; exit 1; }
note() { echo "[$(date +%T)] $*"; }

for tool in sbatch scontrol scancel slurmctld slurmd munged; do
  command -v "$tool" >/dev/null || skip "'$tool' is not installed (Debian's slurm-wlm and munge; scripts/setup.sh)"
done
[ "$(id -u)" -eq 0 ] || skip "the local Slurm cluster needs root"
[ -x "$build_dir/trainer/mone" ] || fail "no $build_dir/trainer/mone"

work=$(mktemp -d /tmp/mone-slurm-test-XXXXXX)
export MONE_SLURM_DIR=$work/cluster
# Room for three jobs at once, so the reference and the interrupted runs overlap.
export MONE_SLURM_CPUS=$((3 * ranks))

# A port pair nobody listens on, so a user's own local cluster (6817) or a
# concurrent run of this test does not collide with ours.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 50); do
  MONE_SLURM_PORT=$((20000 + RANDOM % 20000))
  port_free "$MONE_SLURM_PORT" && port_free $((MONE_SLURM_PORT + 1)) && break
done
export MONE_SLURM_PORT

finish() {
  local status=$?
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    echo "--- job logs and daemon log tails (for the failure above) ---"
    tail -n 40 "$work"/jobs/*.out 2>/dev/null || true
    tail -n 20 "$MONE_SLURM_DIR"/log/*.log 2>/dev/null || true
  fi
  "$source_dir/scripts/slurm-local.sh" stop >/dev/null || echo "warning: stopping the local cluster failed" >&2
  rm -rf "$work"
  exit "$status"
}
trap finish EXIT

if ! "$source_dir/scripts/slurm-local.sh" start >"$work/start.log" 2>&1; then
  cat "$work/start.log"
  skip "the local Slurm cluster did not start (output above)"
fi
export SLURM_CONF=$MONE_SLURM_DIR/slurm.conf
note "local cluster up: port $MONE_SLURM_PORT, $MONE_SLURM_CPUS CPUs, $ranks rank(s) per job"

"$build_dir/data/mone-data" --out "$work/data" --source synthetic --height 28 --width 28 --channels 1 \
  --count 512 --test-count 64 --val-count 64 --progress none >/dev/null

mkdir -p "$work/jobs"
# Submits train.sbatch with this test's settings; extra VAR=value pairs go to
# --export. Prints the job id.
submit() {
  local name=$1; shift
  local settings
  settings=$(IFS=,; echo "$*")
  (cd "$work/jobs" && sbatch --parsable --job-name="$name" --ntasks="$ranks" \
    --export="ALL,MONE_ROOT=$source_dir,MONE=$build_dir/trainer/mone,DATA=$work/data,RUN_DIR=$work/runs/$name,STEPS=$steps,BATCH=16,THREADS=1,LOG_EVERY=1,CHECKPOINT_EVERY=100,EXTRA_ARGS=--eval-capacities 1${settings:+,$settings}" \
    "$source_dir/slurm/train.sbatch")
}

# One field of `scontrol show job` (JobState, Restarts, ExitCode, ...).
job_field() {
  scontrol show job -o "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# Waits until the job has ended for good. A job that requeues itself passes
# through REQUEUED and PENDING, and ends only with its last run.
wait_final() {
  local job=$1 state
  while true; do
    state=$(job_field "$job" JobState)
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) echo "$state"; return ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] || fail "job $job still '$state' at the test's deadline"
    sleep 1
  done
}

# Training steps a run has logged so far.
logged_steps() {
  local count
  count=$(grep -c '"type": "train"' "$work/runs/$1/metrics.jsonl" 2>/dev/null || true)
  echo "${count:-0}"
}

# Runs `action...` once the job (run `name`) has logged `want` steps; fails if
# the job ends first or the deadline passes. Returns at once (status 1)
# without acting while the job is short of `want`, so several jobs can be
# polled in one loop.
act_at_step() {
  local job=$1 name=$2 want=$3; shift 3
  if [ "$(logged_steps "$name")" -ge "$want" ]; then
    "$@" || fail "'$*' failed"
    return 0
  fi
  case "$(job_field "$job" JobState)" in
    COMPLETED | FAILED | CANCELLED) fail "job $job ended before step $want (log: $work/jobs/$name-$job.out)" ;;
  esac
  [ "$SECONDS" -lt "$deadline" ] || fail "job $job logged $(logged_steps "$name") of $want steps by the test's deadline"
  return 1
}

# Waits until the job has logged `want` steps, then runs `action...`.
at_step() {
  until act_at_step "$@"; do sleep 0.5; done
}

expect() {  # job field value
  local got
  got=$(job_field "$1" "$2")
  [ "$got" = "$3" ] || fail "job $1: $2 is '$got', expected '$3'"
}

# The job was interrupted once and resumed from a checkpoint mid-run.
expect_resumed() {
  local job=$1 name=$2 log resumed_at
  [ "$(wait_final "$job")" = COMPLETED ] || fail "$name job $job: $(job_field "$job" JobState)"
  expect "$job" Restarts 1
  expect "$job" ExitCode 0:0
  log=$work/jobs/$name-$job.out
  resumed_at=$(sed -n 's/^resuming at step \([0-9]*\) .*/\1/p' "$log" | head -n 1)
  if [ -z "$resumed_at" ] || [ "$resumed_at" -le 0 ] || [ "$resumed_at" -ge "$steps" ]; then
    fail "$name job $job did not resume mid-run (resumed at '$resumed_at'; see $log)"
  fi
  note "$name job $job stopped, was requeued and resumed at step $resumed_at"
  "$python" "$source_dir/tests/slurm/compare_runs.py" "$work/runs/reference" "$work/runs/$name" ||
    fail "the $name run differs from the uninterrupted one"
}

# --- 1. pre-emption, requeue, resume: bitwise the uninterrupted run ---------
started=$SECONDS
reference=$(submit reference)
preempted=$(submit preempted)
requeued=$(submit requeued)
note "submitted jobs $reference (reference), $preempted (pre-empted), $requeued (requeued); $steps steps each"
# Each is interrupted once it has done a quarter of its steps, whichever is first.
preempt() { scancel --signal=USR1 --batch "$preempted" && note "sent SIGUSR1 to job $preempted's batch shell"; }
requeue() { scontrol requeue "$requeued" && note "requeued job $requeued with scontrol"; }
preempt_done='' requeue_done=''
until [ -n "$preempt_done" ] && [ -n "$requeue_done" ]; do
  [ -n "$preempt_done" ] || { act_at_step "$preempted" preempted $((steps / 4)) preempt && preempt_done=1; }
  [ -n "$requeue_done" ] || { act_at_step "$requeued" requeued $((steps / 4)) requeue && requeue_done=1; }
  sleep 0.5
done
[ "$(wait_final "$reference")" = COMPLETED ] || fail "reference job $reference: $(job_field "$reference" JobState)"
expect "$reference" Restarts 0
expect_resumed "$preempted" preempted
expect_resumed "$requeued" requeued
note "phase 1 done in $((SECONDS - started))s"

# --- 2. a rank killed with SIGKILL: a failure, promptly, no requeue ----------
# 3. and the restart guard, in parallel: MAX_RESTARTS=0, pre-empted once.
started=$SECONDS
killed=$(submit killed STEPS=1000000 RANK_EXIT_WAIT=10)
guarded=$(submit guarded STEPS=1000000 MAX_RESTARTS=0)
at_step "$killed" killed 3 true
# The last rank's process, from slurmd's list of the job's processes (the
# training step is step 0).
victim=$(scontrol listpids "$killed" | awk -v rank=$((ranks - 1)) '$3 == "0" && $5 == rank { print $1 }')
[ -n "$victim" ] || fail "no process of job $killed, rank $((ranks - 1)) in scontrol listpids"
[ "$(cat "/proc/$victim/comm")" = mone ] || fail "pid $victim of job $killed, rank $((ranks - 1)) is not mone"
kill -KILL "$victim"
note "killed rank $((ranks - 1)) of job $killed (pid $victim) with SIGKILL"
killed_at=$SECONDS
[ "$(wait_final "$killed")" = FAILED ] || fail "job $killed with a killed rank: $(job_field "$killed" JobState)"
expect "$killed" Restarts 0
note "job $killed ended FAILED $((SECONDS - killed_at))s after the kill, not requeued"

at_step "$guarded" guarded 3 scancel --signal=USR1 --batch "$guarded"
[ "$(wait_final "$guarded")" = FAILED ] || fail "job $guarded past MAX_RESTARTS: $(job_field "$guarded" JobState)"
expect "$guarded" Restarts 0
expect "$guarded" ExitCode 75:0
ls "$work/runs/guarded/checkpoints/"step-*.h5 >/dev/null || fail "job $guarded stopped without a checkpoint"
note "job $guarded stopped with exit code 75 and a checkpoint, not requeued (MAX_RESTARTS=0); $((SECONDS - started))s"
echo "PASSED"
