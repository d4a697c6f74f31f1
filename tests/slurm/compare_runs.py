#!/usr/bin/env python3
"""Requires two run directories of `mone train` to hold the same training,
bit for bit: every step 1..N logged exactly once with the same loss, and the
final checkpoints with the same parameters and AdamW moments.

    compare_runs.py REFERENCE_RUN_DIR OTHER_RUN_DIR [--resized-at STEP]

With --resized-at, for a run resumed at STEP on another world size: the same
samples, summed in another order. Steps up to STEP must be bitwise equal;
every step's sample position (epoch) and capacity (e_c) equal; the first
resumed step's loss, computed from the same parameters, within
FIRST_STEP_TOLERANCE of the reference's (a different sample gives ~1e-2); the
next NEAR_STEPS within NEAR_TOLERANCE. Later losses are not compared: routing
is discrete, so rounding differences grow until the runs part (by ~50
steps in `tiny`). The final checkpoints must hold the same step and datasets.

Exits 0 when equal, 1 with every difference named otherwise. The slurm tests
call it on an uninterrupted run and a requeued or resized one.
"""
import argparse
import json
import struct
import sys
from pathlib import Path

import h5py
import numpy as np

# Relative loss tolerances after a world-size change (--resized-at).
FIRST_STEP_TOLERANCE = 1e-5
NEAR_STEPS = 10
NEAR_TOLERANCE = 1e-3


def train_records(run_dir):
    """{step: record} of the "train" records; a step logged twice is an error."""
    records = {}
    for number, line in enumerate((run_dir / "metrics.jsonl").read_text().splitlines(), 1):
        record = json.loads(line)
        if record.get("type") != "train":
            continue
        if record["step"] in records:
            raise SystemExit(f"{run_dir}/metrics.jsonl:{number}: step {record['step']} logged twice")
        records[record["step"]] = record
    return records


def bits(value):
    # The float's bits: 17 significant digits read back exactly, and
    # comparing bits also tells -0.0 from 0.0 and a NaN from null.
    return None if value is None else struct.pack("<d", value)


def differing_steps(want, got, steps, resized_at):
    """The steps whose records differ, and the largest relative loss difference
    of the compared resumed steps."""
    differing, largest = [], 0.0
    for step in steps:
        a, b = want[step], got[step]
        if resized_at is None or step <= resized_at:
            same = bits(a["loss"]) == bits(b["loss"])
        else:
            same = bits(a["epoch"]) == bits(b["epoch"]) and a["e_c"] == b["e_c"]
            if step <= resized_at + NEAR_STEPS:
                relative = abs(a["loss"] - b["loss"]) / abs(a["loss"])
                largest = max(largest, relative)
                same = same and relative <= (FIRST_STEP_TOLERANCE if step == resized_at + 1 else NEAR_TOLERANCE)
        if not same:
            differing.append(step)
    return differing, largest


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--resized-at", type=int, metavar="STEP", help="the other run resumed at STEP on another world size")
    args = parser.parse_args()
    reference, other, resized_at = args.reference, args.other, args.resized_at
    problems = []

    want, got = train_records(reference), train_records(other)
    steps = max(want, default=0)
    if sorted(want) != list(range(1, steps + 1)):
        problems.append(f"{reference}: steps logged are not 1..{steps} (run with --log-every 1)")
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing:
        problems.append(f"{other}: steps {missing[:10]} not logged")
    if extra:
        problems.append(f"{other}: steps {extra[:10]} logged but not in the reference")
    differing, largest_loss = differing_steps(want, got, sorted(set(want) & set(got)), resized_at)
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
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append(f"{name}: {a.dtype}{a.shape} against {b.dtype}{b.shape}")
        elif resized_at is None and a.tobytes() != b.tobytes():
            problems.append(f"{name}: differs ({int(np.count_nonzero(a != b))} elements)")

    if problems:
        print("runs differ:\n  " + "\n  ".join(problems))
        return 1
    if resized_at is None:
        print(f"runs equal: {steps} step losses and {len(reference_tensors)} checkpoint datasets "
              f"(step {reference_step}) bitwise")
    else:
        print(f"runs agree: steps 1-{resized_at} bitwise; steps {resized_at + 1}-{steps} on the same samples and "
              f"capacities; losses of steps {resized_at + 1}-{resized_at + NEAR_STEPS} within {largest_loss:.1e} "
              f"(relative); final checkpoints at step {reference_step} with the same {len(reference_tensors)} datasets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
