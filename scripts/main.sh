#!/usr/bin/env bash
# The README's first command: set up, build, and run the main job: convert
# Fashion-MNIST to HDF5 shards, train the `tiny` MoNE ViT with a random
# capacity each step, and evaluate the one model at several compute budgets
# on the test split. About 10 minutes on a 2-core machine. Training runs
# data-parallel on 2 MPI ranks (one thread each by the default rule: cores /
# ranks on the machine); evaluation runs in one process.
#
# Environment: MONE_STEPS (default: scripts/main.ini's), MONE_RUN_DIR (default runs/main),
# MONE_BUILD_DIR (an existing build: setup and build are skipped), MONE_DATA_DIR
# (a dataset converted by `mone data`, used instead of Fashion-MNIST).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MONE_BUILD_DIR:-}" ]; then
  "$root/scripts/setup.sh"
  "$root/scripts/build.sh"
fi
source "$root/scripts/blas-env.sh"
build="${MONE_BUILD_DIR:-$root/build}"
data="${MONE_DATA_DIR:-$root/datasets/fashion-mnist}"
run="${MONE_RUN_DIR:-$root/runs/main}"

echo "== Fashion-MNIST -> $data"
if [ -f "$data/manifest.h5" ]; then
  echo "already converted"
else
  "$build/trainer/mone" data --out "$data" --val-count 5000
fi

echo "== train tiny, random capacity -> $run"
# The recipe is scripts/main.ini. Resumes automatically if a previous run in
# $run was stopped (exit code 75).
# As root (containers, CI) Open MPI needs both OMPI_ALLOW_RUN_AS_ROOT*, as in
# the distributed tests; --oversubscribe lets 2 ranks start on fewer cores.
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# scripts/mpirun.sh: a SIGTERM to this script still ends in a checkpoint and
# exit code 75. --progress: a bar on a terminal, lines in a log file (mpirun
# gives rank 0 a terminal even when this script's output is a file).
progress=lines
[ ! -t 1 ] || progress=bar
"$root/scripts/mpirun.sh" -np 2 --oversubscribe "$build/trainer/mone" train --config "$root/scripts/main.ini" \
  --data "$data" --run-dir "$run" --progress "$progress" ${MONE_STEPS:+--steps "$MONE_STEPS"}

echo "== evaluate the one model at several budgets on the test split"
"$build/trainer/mone" eval --data "$data" --checkpoint "$run" --split test \
  --capacities 0.2,0.3,0.4,0.5,0.6,0.8,1.0
