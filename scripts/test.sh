#!/usr/bin/env bash
# The README's second command: set up, build, run every test. CTest's summary
# is the last thing printed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
source "$root/scripts/blas-env.sh"
cd "$root/build"
ctest --output-on-failure -j 2 "$@"
