#!/usr/bin/python3
"""What each recipe of the results study cost to train, from its metrics.

Each argument is LABEL=RUN_DIR. From the run's train records
(metrics.jsonl; the study logs every step, --log-every 1): the steps, the
training time (the sum of ms_per_step: the steps
themselves, without evaluations and checkpoints; the mean times the steps
when not every step was logged) and the training FLOPs (the records'
`gflops`: 3x the forward FLOPs of every pass over the global batch, summed
the same way). Prints a Markdown table.

  /usr/bin/python3 scripts/training_cost.py "dense D64=runs/study/dense" "sandwich=runs/study/sandwich-distill"
"""

import json
import os
import sys


def cost(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        sys.exit(f"training_cost.py: error: {path}: no such file")
    records = {}
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("type") == "train":
                records[record["step"]] = record  # a resumed run rewrites its later steps: the last record wins
    if not records:
        sys.exit(f"training_cost.py: error: {path} has no train records")
    if any("gflops" not in r for r in records.values()):
        sys.exit(f"training_cost.py: error: {path}: train records without 'gflops' (trained by an older mone)")
    steps = max(records)
    scale = steps / len(records)  # 1 when every step was logged
    ms = sum(r["ms_per_step"] for r in records.values()) * scale
    gflops = sum(r["gflops"] for r in records.values()) * scale
    return steps, len(records) == steps, ms / 60000.0, gflops / 1000.0


def main():
    print("| recipe | steps | training time (min) | training TFLOPs | exact |")
    print("|---|---|---|---|---|")
    for item in sys.argv[1:]:
        label, sep, run_dir = item.partition("=")
        if not sep:
            sys.exit(f"training_cost.py: error: '{item}' is not LABEL=RUN_DIR")
        steps, exact, minutes, tflops = cost(run_dir)
        print(f"| {label} | {steps} | {minutes:.1f} | {tflops:.1f} | {'yes' if exact else 'mean x steps'} |")


if __name__ == "__main__":
    main()
