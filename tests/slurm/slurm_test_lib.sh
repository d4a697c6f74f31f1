# shellcheck shell=bash
# Shared by the slurm tests (test_preemption.sh, test_multinode.sh): a local
# cluster of the test's own, a synthetic dataset, job submission and polling.
# Sourced after the test has set source_dir, build_dir, steps and python;
# deadline bounds every wait.
#
# Exit codes of the tests: 0 passed, 1 failed, 77 skipped (the reason is
# printed). The cluster is stopped and the working directory removed on every
# exit, failures included.

skip() { echo "SKIPPED: $*"; exit 77; }
# The message also goes to $work/failure (fail may run in a subshell), so
# that finish can show the log of the job it names first.
fail() {
  echo "FAILED: $*" >&2
  [ -z "${work:-}" ] || echo "$*" >>"$work/failure"
  exit 1
}
note() { echo "[$(date +%T)] $*"; }

require_slurm() {
  local tool
  for tool in sbatch scontrol scancel slurmctld slurmd munged; do
    command -v "$tool" >/dev/null || skip "'$tool' is not installed (Debian's slurm-wlm and munge; scripts/setup.sh)"
  done
  [ "$(id -u)" -eq 0 ] || skip "the local Slurm cluster needs root"
  [ -x "$build_dir/trainer/mone" ] || fail "no $build_dir/trainer/mone"
}

# A job log without what makes it long: its per-step lines (the last two of
# each run of them stay, with a count) and the trainer's configuration dump.
condensed_log() {
  awk 'function steps() {
         if (n > 2) print "[" n - 2 " step lines]"
         if (n > 1) print previous
         if (n > 0) print last
         n = 0
       }
       /^step [0-9]+\/[0-9]+ / { previous = last; last = $0; n++; next }
       /^  [a-z][a-z0-9-]* / && !/e_c req/ { next }
       { steps(); print }
       END { steps() }' "$1"
}

finish() {
  local status=$? log named first=''
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    echo "--- job logs (condensed) and daemon log tails, for the failure above ---"
    # The log of the job the failure names first (CI may show only the start).
    named=$(sed -n 's/.*job \([0-9][0-9]*\).*/\1/p' "$work/failure" 2>/dev/null | head -n 1)
    for log in $(ls "$work"/jobs/*-"${named:-none}".out 2>/dev/null) $(ls "$work"/jobs/*.out 2>/dev/null); do
      [ "$log" != "${first:-}" ] || continue
      first=${first:-$log}
      echo "==> $log <=="
      condensed_log "$log"
    done
    tail -n 20 "$MONE_SLURM_DIR"/log/*.log 2>/dev/null || true
  fi
  "$source_dir/scripts/slurm-local.sh" stop >/dev/null || echo "warning: stopping the local cluster failed" >&2
  rm -rf "$work"
  exit "$status"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts a cluster (scripts/slurm-local.sh start "$@") in a new working
# directory $work, on a free port, and writes the dataset $work/data. Skips
# the test when the cluster cannot start.
start_test_cluster() {
  work=$(mktemp -d /tmp/mone-slurm-test-XXXXXX)
  export MONE_SLURM_DIR=$work/cluster
  # A port pair nobody listens on, so a user's own local cluster (6817) or a
  # concurrent run of a test does not collide with ours.
  for _ in $(seq 50); do
    MONE_SLURM_PORT=$((20000 + RANDOM % 20000))
    port_free "$MONE_SLURM_PORT" && port_free $((MONE_SLURM_PORT + 1)) && break
  done
  export MONE_SLURM_PORT
  trap finish EXIT
  if ! "$source_dir/scripts/slurm-local.sh" start "$@" >"$work/start.log" 2>&1; then
    cat "$work/start.log"
    skip "the local Slurm cluster did not start (output above)"
  fi
  export SLURM_CONF=$MONE_SLURM_DIR/slurm.conf
  "$build_dir/data/mone-data" --out "$work/data" --source synthetic --height 28 --width 28 --channels 1 \
    --count 512 --test-count 64 --val-count 64 --progress none >/dev/null
  mkdir -p "$work/jobs"
}

# Submits train.sbatch with the tests' settings: submit NAME [SBATCH_OPTION...]
# [VAR=value...], the options (starting with -) for sbatch, the pairs for
# --export. The run directory is $work/runs/NAME. Prints the job id.
extra_args="--eval-capacities 1"  # EXTRA_ARGS of every job; a caller may set it for one call
submit() {
  local name=$1 resources=() settings
  shift
  while [ $# -gt 0 ] && [[ $1 == -* ]]; do resources+=("$1"); shift; done
  settings=$(IFS=,; echo "$*")
  (cd "$work/jobs" && sbatch --parsable --job-name="$name" "${resources[@]}" \
    --export="ALL,MONE_ROOT=$source_dir,MONE=$build_dir/trainer/mone,DATA=$work/data,RUN_DIR=$work/runs/$name,STEPS=$steps,BATCH=16,THREADS=1,LOG_EVERY=1,CHECKPOINT_EVERY=100,EXTRA_ARGS=$extra_args${settings:+,$settings}" \
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

# The step of the last "saved checkpoint" line in a job's log ($work/jobs/NAME-JOB.out).
last_saved_step() {
  sed -n 's/^saved checkpoint .*step-0*\([0-9]*\)\.h5$/\1/p' "$work/jobs/$1" | tail -n 1
}

# The step of the newest checkpoint file in run `name`'s directory.
newest_checkpoint() {
  find "$work/runs/$1/checkpoints" -maxdepth 1 -name 'step-*.h5' -printf '%f\n' 2>/dev/null |
    sed -n 's/^step-0*\([0-9]*\)\.h5$/\1/p' | sort -n | tail -n 1
}

# The step a job's log says it resumed at (empty if it did not resume).
resumed_at() {
  sed -n 's/^resuming at step \([0-9]*\) .*/\1/p' "$work/jobs/$1" | head -n 1
}

# The job was interrupted once, resumed from a checkpoint mid-run, and
# trained bitwise what the uninterrupted run `reference` trained.
expect_resumed() {
  local job=$1 name=$2 reference=$3 at
  [ "$(wait_final "$job")" = COMPLETED ] || fail "$name job $job: $(job_field "$job" JobState)"
  expect "$job" Restarts 1
  expect "$job" ExitCode 0:0
  at=$(resumed_at "$name-$job.out")
  if [ -z "$at" ] || [ "$at" -le 0 ] || [ "$at" -ge "$steps" ]; then
    fail "$name job $job did not resume mid-run (resumed at '$at'; see $work/jobs/$name-$job.out)"
  fi
  note "$name job $job stopped, was requeued and resumed at step $at"
  "$python" "$source_dir/tests/slurm/compare_runs.py" "$work/runs/$reference" "$work/runs/$name" ||
    fail "the $name run differs from the uninterrupted one"
}
