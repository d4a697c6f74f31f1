#!/usr/bin/env bash
# The README's first command: set up, build, and run the main job.
# Until the trainer lands (issue 4), the main job is the best end-to-end thing
# that exists: convert Fashion-MNIST to HDF5 shards, check the C++ model's
# logits, loss and every gradient against an independent PyTorch model, and
# measure a training step against PyTorch's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
build="$root/build"
data="$root/datasets/fashion-mnist"

echo "== Fashion-MNIST -> $data"
if [ -f "$data/manifest.h5" ]; then
  echo "already converted"
else
  "$build/data/mone-data" --out "$data"
fi

echo "== the C++ model against PyTorch (logits, loss, every gradient; e_c = 1, 0.5, 0.3)"
/usr/bin/python3 "$root/tests/torch/crosscheck.py" "$build/trainer/mone-check"

echo "== one training step (forward + backward), ours and PyTorch's, tiny at batch 128"
/usr/bin/python3 "$root/bench/cpu_step.py" --build "$build" --steps 10
