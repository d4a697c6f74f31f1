#!/usr/bin/env bash
# Submits a scaling study of slurm/train.sbatch: for each count in COUNTS, a
# strong-scaling job (the global batch fixed at BATCH) and a weak-scaling job
# (BATCH_PER_RANK per rank), each from its own config file. The jobs run one
# after another (a dependency chain), so no two of them compete for the
# machines and the step times are clean. Then:
#
#   scripts/scaling_report.py STUDY_DIR     # table (img/s, efficiency, step time split) + PNG
#
#   slurm/scaling.sh                                     # 1, 2, 4 ranks on one node
#   UNIT=nodes COUNTS="1 2 4 8" TASKS_PER_NODE=8 SBATCH_ARGS="--gpus-per-node=8" \
#     PRESET=s16 BATCH_PER_RANK=256 slurm/scaling.sh     # 1-8 nodes of 8 GPUs
#
# Settings (environment; defaults in brackets):
#   STUDY_DIR       where configs, runs and logs go [runs/scaling-<date>]
#   COUNTS          rank counts, or node counts with UNIT=nodes ["1 2 4"]
#   UNIT            ranks: COUNTS are ranks on one node; nodes: COUNTS are
#                   nodes with TASKS_PER_NODE ranks each [ranks]
#   TASKS_PER_NODE  ranks per node with UNIT=nodes (GPUs per node on GPU runs) [1]
#   MODES           which studies ["strong weak"]
#   PRESET STEPS    model and steps per job [tiny, 200]
#   BATCH           strong scaling: global batch, the same at every count [128]
#   BATCH_PER_RANK  weak scaling: batch per rank [32]
#   train.sbatch's other variables (DATA, MONE, THREADS, LR, ...) reach every
#   job through --export=ALL
#   SBATCH_ARGS     more sbatch options for every job (--partition, --time, --gpus-per-node, ...)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

STUDY_DIR=${STUDY_DIR:-$root/runs/scaling-$(date +%Y%m%d-%H%M%S)}
COUNTS=${COUNTS:-1 2 4}
UNIT=${UNIT:-ranks}
TASKS_PER_NODE=${TASKS_PER_NODE:-1}
MODES=${MODES:-strong weak}
PRESET=${PRESET:-tiny}
STEPS=${STEPS:-200}
BATCH=${BATCH:-128}
BATCH_PER_RANK=${BATCH_PER_RANK:-32}
SBATCH_ARGS=${SBATCH_ARGS:-}

die() { echo "scaling.sh: error: $*" >&2; exit 1; }
command -v sbatch >/dev/null || die "sbatch not found: run on a Slurm login node (or start scripts/slurm-local.sh)"
case "$UNIT" in ranks | nodes) ;; *) die "UNIT '$UNIT' is neither ranks nor nodes" ;; esac
read -r -a counts <<<"$COUNTS"
read -r -a modes <<<"$MODES"
read -r -a sbatch_args <<<"$SBATCH_ARGS"

mkdir -p "$STUDY_DIR/configs" "$STUDY_DIR/logs"
manifest=$STUDY_DIR/study.tsv
# The report reads this: one line per job.
printf 'run\tmode\tranks\tnodes\tbatch\tjob\n' >"$manifest"

previous=
for mode in "${modes[@]}"; do
  for count in "${counts[@]}"; do
    if [ "$UNIT" = nodes ]; then
      nodes=$count ranks=$((count * TASKS_PER_NODE))
      allocation=(--nodes="$nodes" --ntasks-per-node="$TASKS_PER_NODE")
    else
      nodes=1 ranks=$count
      allocation=(--nodes=1 --ntasks="$ranks")
    fi
    case "$mode" in
      strong) batch=$BATCH ;;
      weak) batch=$((BATCH_PER_RANK * ranks)) ;;
      *) die "MODES holds '$mode'; use strong and/or weak" ;;
    esac
    [ $((batch % ranks)) -eq 0 ] || die "$mode, $ranks ranks: batch $batch is not a multiple of the ranks"
    run=$mode-n$ranks
    config=$STUDY_DIR/configs/$run.ini
    # Timing runs: every step logged, no evaluations in between (train.sbatch
    # adds CHECKPOINT_EVERY=0: only the final checkpoint, or one on a stop).
    cat >"$config" <<EOF
# $mode scaling, $ranks ranks on $nodes node(s); written by slurm/scaling.sh
preset = $PRESET
steps = $STEPS
batch = $batch
log-every = 1
eval-every = 0
eval-capacities = 1
EOF
    # PRESET, STEPS and BATCH are blanked for train.sbatch: set in this
    # shell they would reach it through --export=ALL and override the config.
    dependency=()
    [ -z "$previous" ] || dependency=(--dependency="afterany:$previous")
    job=$(sbatch --parsable --job-name="mone-$run" --output="$STUDY_DIR/logs/%x-%j.out" \
      "${allocation[@]}" "${dependency[@]}" "${sbatch_args[@]}" \
      --export="ALL,MONE_ROOT=${MONE_ROOT:-$root},CONFIG=$config,RUN_DIR=$STUDY_DIR/$run,PRESET=,STEPS=,BATCH=,CHECKPOINT_EVERY=0" \
      "$root/slurm/train.sbatch")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$mode" "$ranks" "$nodes" "$batch" "$job" >>"$manifest"
    echo "submitted $run: job $job ($ranks ranks, $nodes node(s), global batch $batch)"
    previous=$job
  done
done
echo "study in $STUDY_DIR; when the jobs are done: scripts/scaling_report.py $STUDY_DIR"
