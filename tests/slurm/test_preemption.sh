#!/usr/bin/env bash
# End-to-end test of slurm/train.sbatch on a real one-node Slurm cluster
# (scripts/slurm-local.sh), CTest label "slurm" (docs/slurm.md):
#
#  1. pre-emption: three identical jobs. One is sent SIGUSR1 through its
#     batch shell mid-run (scancel --signal=USR1 --batch, as a scheduler warns
#     of the end of a time slot): it stops with a checkpoint, requeues itself
#     and resumes; its first `scontrol requeue` fails, as with a controller
#     too busy to answer, and the script must try again. One is requeued by
#     the scheduler (scontrol requeue: SIGTERM, checkpoint, the scheduler
#     restarts it). All must complete, the two
#     interrupted ones with per-step losses and final parameters bitwise
#     equal to the uninterrupted one's (compare_runs.py).
#  2. a rank killed with SIGKILL: the job must end FAILED, without a requeue
#     and within a bounded time (no hang in a collective).
#  3. the restart guard: with MAX_RESTARTS=0 a pre-empted job stops for good
#     (FAILED, exit code 75) instead of requeueing.
#  4. SIGTERM to the batch shell (what scancel and a time limit send) with
#     either launcher, srun and mpirun: the ranks checkpoint and the job ends
#     with the requeue code 75 (Open MPI's mpirun alone would exit 1).
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

# shellcheck source=tests/slurm/slurm_test_lib.sh
source "$source_dir/tests/slurm/slurm_test_lib.sh"
require_slurm
# Room for three jobs at once, so the reference and the interrupted runs overlap.
export MONE_SLURM_CPUS=$((3 * ranks))
start_test_cluster
note "local cluster up: port $MONE_SLURM_PORT, $MONE_SLURM_CPUS CPUs, $ranks rank(s) per job"

# --- 1. pre-emption, requeue, resume: bitwise the uninterrupted run ---------
started=$SECONDS
reference=$(submit reference --ntasks="$ranks")
# An scontrol that refuses the first requeue (on the one node, so one marker).
mkdir -p "$work/flaky-bin"
cat >"$work/flaky-bin/scontrol" <<FLAKY
#!/bin/sh
if [ "\$1" = requeue ] && [ ! -e "$work/flaky-bin/refused" ]; then
  touch "$work/flaky-bin/refused"
  echo "scontrol: error: Socket timed out on send/recv operation (made up by the test)" >&2
  exit 1
fi
exec $(command -v scontrol) "\$@"
FLAKY
chmod +x "$work/flaky-bin/scontrol"
preempted=$(submit preempted --ntasks="$ranks" "PATH=$work/flaky-bin:$PATH")
requeued=$(submit requeued --ntasks="$ranks")
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
expect_resumed "$preempted" preempted reference
grep -q "scontrol requeue $preempted failed (try 1 of 5)" "$work/jobs/preempted-$preempted.out" ||
  fail "job $preempted: no retry after the refused requeue in its log"
expect_resumed "$requeued" requeued reference
note "phase 1 done in $((SECONDS - started))s"

# --- 2. a rank killed with SIGKILL: a failure, promptly, no requeue ----------
# 3. and the restart guard, in parallel: MAX_RESTARTS=0, pre-empted once.
started=$SECONDS
killed=$(submit killed --ntasks="$ranks" STEPS=1000000 RANK_EXIT_WAIT=10)
guarded=$(submit guarded --ntasks="$ranks" STEPS=1000000 MAX_RESTARTS=0)
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

# --- 4. SIGTERM through either launcher ends in 75 --------------------------
started=$SECONDS
by_srun=$(submit term-srun --ntasks="$ranks" STEPS=1000000 LAUNCHER=srun)
by_mpirun=$(submit term-mpirun --ntasks="$ranks" STEPS=1000000 LAUNCHER=mpirun OMPI_ALLOW_RUN_AS_ROOT=1 \
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
at_step "$by_srun" term-srun 3 scancel --signal=TERM --batch "$by_srun"
at_step "$by_mpirun" term-mpirun 3 scancel --signal=TERM --batch "$by_mpirun"
for job in "$by_srun:term-srun" "$by_mpirun:term-mpirun"; do
  id=${job%%:*} name=${job#*:}
  wait_final "$id" > /dev/null
  expect "$id" ExitCode 75:0
  ls "$work/runs/$name/checkpoints/"step-*.h5 >/dev/null || fail "job $id ($name) stopped without a checkpoint"
done
note "SIGTERM: jobs $by_srun (srun) and $by_mpirun (mpirun) ended with exit code 75 and a checkpoint; $((SECONDS - started))s"
echo "PASSED"
