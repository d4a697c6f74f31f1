#!/usr/bin/env bash
# mpirun for `mone train`, with stop signals that keep their meaning:
#
#   scripts/mpirun.sh -np 2 build/trainer/mone train ...
#
# Open MPI's mpirun does not forward SIGTERM: it kills the ranks itself and
# exits 1, so a scheduler or script would not see the requeue code 75 even
# though the ranks saved a checkpoint. This runs mpirun in the background and
# turns SIGTERM, SIGINT and SIGUSR1 sent to this script into SIGUSR1 to mpirun,
# which forwards it to every rank: they finish the step, checkpoint and exit
# 75, and so does this script (docs/trainer.md, "Exit codes"). Any other exit
# code of mpirun is passed through.
set -uo pipefail
mpirun "$@" &
launcher=$!
stop() { kill -USR1 "$launcher" 2>/dev/null || true; }
trap stop TERM INT USR1
# `wait` returns early (>128) when a trapped signal arrives: wait again until
# mpirun itself has ended.
while true; do
  wait "$launcher"
  status=$?
  kill -0 "$launcher" 2>/dev/null || break
done
exit "$status"
