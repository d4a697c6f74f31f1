#!/usr/bin/env bash
# slurm/train.sbatch across nodes: a 4-node cluster of network namespaces
# (scripts/slurm-local.sh start --nodes 4), MPI between the nodes over TCP on
# their test link only (MONE_NET_IF=mone0), CTest label "slurm"
# (docs/slurm.md, "Several nodes on one machine"):
#
#  1. the same training on one node and on two: a 2-rank job on one node
#     (shared memory) is the reference; 2-node jobs of 1 rank each, launched
#     by srun --mpi=pmix and by mpirun with a hostfile from the allocation,
#     must log the same per-step losses and end with the same parameters and
#     AdamW moments, bitwise (compare_runs.py).
#  2. pre-emption across nodes: a 2-node job sent SIGUSR1 through its batch
#     shell mid-run checkpoints on every rank's agreed step, requeues itself,
#     resumes and completes bitwise equal to the reference. A second one,
#     stopped for good (MAX_RESTARTS=0), resumes on one node with one rank
#     and must continue the same sample sequence (the same epoch and e_c
#     every step, losses within rounding: compare_runs.py --tolerance).
#  3. node failure: every process of the second node of a running job is
#     killed (slurmd, step daemon, rank: SIGKILL), and another job's second
#     node is cut off (link down). Each job's batch script must end with a
#     failure within a bound (the trainer's --comm-timeout watchdog, then
#     srun), end FAILED without a requeue once the node is back, and leave a
#     last checkpoint that a new job resumes from.
#  4. local ranks across nodes: 2 nodes x 2 ranks; World's shared-memory
#     split must agree with SLURM_LOCALID on every node, and a launcher that
#     disagrees (SLURM_LOCALID swapped) must be refused on both nodes.
#
#   test_multinode.sh SOURCE_DIR BUILD_DIR
#
# Exit codes: 0 passed, 1 failed, 77 skipped (no Slurm, not root, no network
# namespaces: the reason is printed). The cluster, its namespaces and links
# are removed on every exit, failures included.
set -euo pipefail

source_dir=$(cd "$1" && pwd)
build_dir=$(cd "$2" && pwd)
steps=${MONE_SLURM_TEST_STEPS:-300}
python=${MONE_PYTHON:-/usr/bin/python3}
# Every wait below ends at this deadline, inside CTest's TIMEOUT (900 s).
deadline=$((SECONDS + 720))
# The watchdog bound of the failure jobs, and how long after a fault their
# batch script may take to end: the watchdog, srun's wait for the step's
# other node (KillWait 30 s + 2) and slack for a loaded machine.
comm_timeout=15
fault_bound=$((comm_timeout + 32 + 75))

# shellcheck source=tests/slurm/slurm_test_lib.sh
source "$source_dir/tests/slurm/slurm_test_lib.sh"
require_slurm
command -v ip >/dev/null && command -v unshare >/dev/null && command -v nsenter >/dev/null ||
  skip "ip, unshare or nsenter missing (iproute2, util-linux)"
# Can this machine make a network and a UTS namespace at all (a container may forbid it)?
unshare --net --uts true 2>/dev/null || skip "cannot create network namespaces here (unshare --net --uts failed)"
# Its own subnet, so that a user's cluster on the default one is left alone.
export MONE_SLURM_SUBNET=${MONE_SLURM_TEST_SUBNET:-10.213.8}
# 5 two-rank jobs of phase 1 run at once on node1 and node2, with a rank of
# each failure job beside them.
export MONE_SLURM_CPUS=6
start_test_cluster --nodes 4
note "4-node cluster up on $MONE_SLURM_SUBNET.0/24, port $MONE_SLURM_PORT, $MONE_SLURM_CPUS CPUs per node"

net=(MONE_NET_IF=mone0)
# Open MPI's mpirun refuses root without these.
as_root=(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
two_nodes=(--nodes=2 --ntasks-per-node=1 --nodelist=node1,node2)
started=$SECONDS

# --- 1, 2, 3: the jobs, all at once ------------------------------------------
reference=$(submit reference --nodes=1 --ntasks=2 --nodelist=node1 "${net[@]}")
multinode=$(submit multinode "${two_nodes[@]}" "${net[@]}")
mpirun_job=$(submit mpirun "${two_nodes[@]}" "${net[@]}" LAUNCHER=mpirun "${as_root[@]}")
preempted=$(submit preempted "${two_nodes[@]}" "${net[@]}")
resized=$(submit resized "${two_nodes[@]}" "${net[@]}" MAX_RESTARTS=0)
# The failure jobs: node3 and node4 are their victims, node1 and node2 (rank 0) survive.
fault_settings=("${net[@]}" STEPS=1000000 CHECKPOINT_EVERY=50 RANK_EXIT_WAIT=10)
killed=$(extra_args="--eval-capacities 1 --comm-timeout $comm_timeout" \
  submit killed --nodes=2 --ntasks-per-node=1 --nodelist=node1,node3 "${fault_settings[@]}")
cut=$(extra_args="--eval-capacities 1 --comm-timeout $comm_timeout" \
  submit cut --nodes=2 --ntasks-per-node=1 --nodelist=node2,node4 "${fault_settings[@]}")
note "submitted reference $reference (1 node, 2 ranks), multinode $multinode, mpirun $mpirun_job," \
  "preempted $preempted, resized $resized (2 nodes), killed $killed, cut $cut; $steps steps each"

killed_at='' cut_at=''
kill_node() {
  [ "$(scontrol show hostnames "$(job_field "$killed" NodeList)" | tail -n 1)" = node3 ] || fail "killed job not on node3"
  "$source_dir/scripts/slurm-local.sh" fail node3 && killed_at=$SECONDS
}
cut_node() {
  [ "$(scontrol show hostnames "$(job_field "$cut" NodeList)" | tail -n 1)" = node4 ] || fail "cut job not on node4"
  "$source_dir/scripts/slurm-local.sh" cut node4 && cut_at=$SECONDS
}
preempt() { scancel --signal=USR1 --batch "$1" && note "sent SIGUSR1 to job $1's batch shell"; }
done_preempt='' done_resize='' done_kill='' done_cut=''
until [ -n "$done_preempt" ] && [ -n "$done_resize" ] && [ -n "$done_kill" ] && [ -n "$done_cut" ]; do
  [ -n "$done_preempt" ] || { act_at_step "$preempted" preempted $((steps / 4)) preempt "$preempted" && done_preempt=1; }
  [ -n "$done_resize" ] || { act_at_step "$resized" resized $((steps / 4)) preempt "$resized" && done_resize=1; }
  # Past the checkpoint at step 100, so there is a last good one to resume from.
  [ -n "$done_kill" ] || { act_at_step "$killed" killed 120 kill_node && done_kill=1; }
  [ -n "$done_cut" ] || { act_at_step "$cut" cut 120 cut_node && done_cut=1; }
  sleep 0.5
done

# The failure jobs: their batch scripts end (ExitCode set, not RUNNING) within the bound.
batch_ended() { [ "$(job_field "$1" JobState)" != RUNNING ]; }
for job_and_time in "killed $killed $killed_at" "cut $cut $cut_at"; do
  read -r name job at <<<"$job_and_time"
  until batch_ended "$job"; do
    [ $((SECONDS - at)) -le "$fault_bound" ] || fail "$name job $job still RUNNING $((SECONDS - at)) s after the fault"
    sleep 1
  done
  note "$name job $job: batch script ended $((SECONDS - at)) s after the fault (bound $fault_bound s)," \
    "state $(job_field "$job" JobState), exit code $(job_field "$job" ExitCode)"
  grep -q "timed out after $comm_timeout s" "$work/jobs/$name-$job.out" ||
    fail "$name job $job: no watchdog line in its log"
done
"$source_dir/scripts/slurm-local.sh" heal node3
"$source_dir/scripts/slurm-local.sh" heal node4

# --- 1. one node and two, srun and mpirun: bitwise the same -----------------
for job in "$reference" "$multinode" "$mpirun_job"; do
  [ "$(wait_final "$job")" = COMPLETED ] || fail "job $job: $(job_field "$job" JobState)"
  expect "$job" Restarts 0
done
expect "$multinode" NodeList "node[1-2]"
for name in multinode mpirun; do
  "$python" "$source_dir/tests/slurm/compare_runs.py" "$work/runs/reference" "$work/runs/$name" ||
    fail "the 2-node $name run differs from the 1-node one"
done
note "2-node runs (srun, mpirun) equal the 1-node 2-rank run bitwise; $((SECONDS - started)) s so far"

# --- 2. pre-emption across nodes; resume on one node -------------------------
expect_resumed "$preempted" preempted reference
[ "$(wait_final "$resized")" = FAILED ] || fail "resized job $resized: $(job_field "$resized" JobState)"
expect "$resized" ExitCode 75:0
stopped_at=$(last_saved_step "resized-$resized.out")
resized_again=$(submit resized --nodes=1 --ntasks=1 --nodelist=node2)
[ "$(wait_final "$resized_again")" = COMPLETED ] || fail "resized job $resized_again: $(job_field "$resized_again" JobState)"
[ "$(resumed_at "resized-$resized_again.out")" = "$stopped_at" ] ||
  fail "the 1-node job $resized_again did not resume at step $stopped_at, where the 2-node one stopped"
# 1 rank instead of 2 only changes the order of the floating-point sums
# (~1e-7 a step, carried by AdamW); another sample order shows as 1e-2.
"$python" "$source_dir/tests/slurm/compare_runs.py" "$work/runs/reference" "$work/runs/resized" --resized-at "$stopped_at" ||
  fail "the run resumed on 1 node did not continue the 2-node run's samples"
note "stopped on 2 nodes at step $stopped_at, resumed on 1 node, same sample sequence"

# --- 3. after the failures: FAILED, no requeue, a checkpoint to resume from ---
declare -A resumed_job last_step
for name_and_job in "killed $killed" "cut $cut"; do
  read -r name job <<<"$name_and_job"
  [ "$(wait_final "$job")" = FAILED ] || fail "$name job $job: $(job_field "$job" JobState)"
  expect "$job" Restarts 0
  last_step[$name]=$(last_saved_step "$name-$job.out")
  [ -n "${last_step[$name]}" ] || fail "$name job $job saved no checkpoint"
  # The log must name the newest checkpoint on disk: rank 0's stdout is
  # line-buffered, so the line is out before the barrier in which the dead
  # node leaves it to the watchdog.
  on_disk=$(newest_checkpoint "$name")
  [ "$on_disk" = "${last_step[$name]}" ] ||
    fail "$name job $job: its log's last saved checkpoint is step ${last_step[$name]}, the run directory's newest step $on_disk"
  resumed_job[$name]=$(submit "$name" --nodes=1 --ntasks=1 --nodelist=node1 STEPS=$((last_step[$name] + 5)))
done
for name in killed cut; do
  job=${resumed_job[$name]}
  [ "$(wait_final "$job")" = COMPLETED ] || fail "resuming the $name run: job $job $(job_field "$job" JobState)"
  [ "$(resumed_at "$name-$job.out")" = "${last_step[$name]}" ] || fail "job $job did not resume at step ${last_step[$name]}"
  note "$name run: FAILED, not requeued; its last checkpoint (step ${last_step[$name]}) resumed and completed (job $job)"
done

# --- 4. local ranks on every node ---------------------------------------------
train_few=("$build_dir/trainer/mone" train --data "$work/data" --steps 2 --batch 16 --threads 1 --progress lines
           --eval-capacities 1)
# Open MPI as train.sbatch sets it up for MONE_NET_IF.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=mone0 OMPI_MCA_oob_tcp_if_include=mone0
two_by_two=(srun --mpi=pmix --nodes=2 --ntasks-per-node=2 --nodelist=node3,node4 --kill-on-bad-exit=0)
(cd "$work/jobs" && "${two_by_two[@]}" bash -c 'echo "$(hostname) $SLURM_LOCALID"' | sort) >"$work/localid"
[ "$(tr '\n' ' ' <"$work/localid")" = "node3 0 node3 1 node4 0 node4 1 " ] ||
  fail "SLURM_LOCALID per node: $(tr '\n' ' ' <"$work/localid")"
(cd "$work/jobs" && "${two_by_two[@]}" "${train_few[@]}" --run-dir "$work/runs/local-ranks") >"$work/local.log" 2>&1 ||
  fail "2 nodes x 2 ranks did not train: $(tail -n 5 "$work/local.log")"
if (cd "$work/jobs" && "${two_by_two[@]}" bash -c 'SLURM_LOCALID=$((1 - SLURM_LOCALID)) exec "$@"' swap \
  "${train_few[@]}" --run-dir "$work/runs/swapped") >"$work/swapped.log" 2>&1; then
  fail "ranks with SLURM_LOCALID swapped trained anyway"
fi
for node in node3 node4; do
  [ "$(grep -c "on $node: the launcher says local rank . but MPI's shared-memory split says" "$work/swapped.log")" -eq 2 ] ||
    fail "$node: both ranks should refuse the swapped SLURM_LOCALID: $(grep mone: "$work/swapped.log")"
done
note "local ranks 0,1 on each of 2 nodes agree with SLURM_LOCALID; a swapped one is refused on both"

echo "PASSED in $((SECONDS - started)) s"
