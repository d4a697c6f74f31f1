#!/usr/bin/env python3
"""Requires two run directories of `mone train` to hold the same training,
bit for bit: every step 1..N logged exactly once with the same loss, and the
final checkpoints with the same parameters and AdamW moments.

    compare_runs.py REFERENCE_RUN_DIR OTHER_RUN_DIR

Exits 0 when equal, 1 with every difference named otherwise. The pre-emption
test (test_preemption.sh) calls it on an uninterrupted and a requeued run.
"""
import json
import struct
import sys
from pathlib import Path

import h5py
import numpy as np


def step_losses(run_dir):
    """{step: loss bits} of the "train" records; a step logged twice is an error."""
    losses = {}
    for number, line in enumerate((run_dir / "metrics.jsonl").read_text().splitlines(), 1):
        record = json.loads(line)
        if record.get("type") != "train":
            continue
        step = record["step"]
        if step in losses:
            raise SystemExit(f"{run_dir}/metrics.jsonl:{number}: step {step} logged twice")
        # The float's bits: 17 significant digits read back exactly, and
        # comparing bits also tells -0.0 from 0.0 and a NaN from null.
        loss = record["loss"]
        losses[step] = None if loss is None else struct.pack("<d", loss)
    return losses


def final_checkpoint(run_dir):
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*.h5"))
    if not checkpoints:
        raise SystemExit(f"{run_dir}/checkpoints: no checkpoint")
    return checkpoints[-1]


def datasets(path):
    """{name: array} of every dataset under /params and /optimizer."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[...]) if isinstance(item, h5py.Dataset) else None)
        step = int(f.attrs["step"])
    return step, {name: value for name, value in found.items() if name.startswith(("params/", "optimizer/"))}


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    reference, other = Path(sys.argv[1]), Path(sys.argv[2])
    problems = []

    want, got = step_losses(reference), step_losses(other)
    steps = max(want, default=0)
    if sorted(want) != list(range(1, steps + 1)):
        problems.append(f"{reference}: steps logged are not 1..{steps} (run with --log-every 1)")
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing:
        problems.append(f"{other}: steps {missing[:10]} not logged")
    if extra:
        problems.append(f"{other}: steps {extra[:10]} logged but not in the reference")
    differing = [s for s in sorted(set(want) & set(got)) if want[s] != got[s]]
    if differing:
        problems.append(f"losses differ at {len(differing)} steps, first {differing[:10]}")

    reference_step, reference_tensors = datasets(final_checkpoint(reference))
    other_step, other_tensors = datasets(final_checkpoint(other))
    if reference_step != other_step:
        problems.append(f"final checkpoints at steps {reference_step} and {other_step}")
    if not reference_tensors:
        problems.append(f"{final_checkpoint(reference)}: no /params or /optimizer datasets")
    if sorted(reference_tensors) != sorted(other_tensors):
        problems.append("the checkpoints hold different datasets")
    for name in sorted(set(reference_tensors) & set(other_tensors)):
        a, b = reference_tensors[name], other_tensors[name]
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            count = int(np.count_nonzero(a != b)) if a.shape == b.shape else -1
            problems.append(f"{name}: differs ({count} elements)")

    if problems:
        print("runs differ:\n  " + "\n  ".join(problems))
        return 1
    print(f"runs equal: {steps} step losses and {len(reference_tensors)} checkpoint datasets "
          f"(step {reference_step}) bitwise")
    return 0


if __name__ == "__main__":
    sys.exit(main())
