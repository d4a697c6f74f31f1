#!/usr/bin/python3
"""Training curves of one run: loss and validation top-1 against steps.

Reads RUN_DIR/metrics.jsonl (the train records' loss, and every evaluation's
top-1 at each capacity it evaluated) and writes a PNG with two panels: the
training loss (each logged step, and its moving mean over --smooth records)
and top-1 of each evaluation, one line per e_c. Prints one line per
evaluation. A run with several passes per step (--capacity sandwich,
--distill) logs the sum of its passes' losses.

  /usr/bin/python3 scripts/plot_run.py runs/main                 # writes runs/main/curves.png
  /usr/bin/python3 scripts/plot_run.py runs/main --out main.png --smooth 50
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # no display on build machines
import matplotlib.pyplot as plt


def read_metrics(path):
    """(train steps, losses, {e_c: [(step, top1)]}, split) from metrics.jsonl; exits naming a bad line."""
    steps, losses, top1 = [], [], {}
    split = None
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"plot_run.py: error: {path}:{number}: not JSON ({error.msg})")
            if record.get("type") == "train":
                steps.append(record["step"])
                losses.append(record["loss"])
            elif record.get("type") == "eval":
                split = record.get("split", split)
                for result in record["results"]:
                    top1.setdefault(result["requested_capacity"], []).append((record["step"], 100 * result["top1"]))
    return steps, losses, top1, split


def moving_mean(values, window):
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a `mone train` run directory")
    parser.add_argument("--out", help="PNG to write (default RUN_DIR/curves.png)")
    parser.add_argument("--smooth", type=int, default=20, help="records in the loss's moving mean (default 20)")
    args = parser.parse_args()
    metrics = os.path.join(args.run_dir, "metrics.jsonl")
    if not os.path.isfile(metrics):
        sys.exit(f"plot_run.py: error: {metrics}: no such file (is {args.run_dir} a run directory?)")
    if args.smooth < 1:
        sys.exit("plot_run.py: error: --smooth must be at least 1")
    steps, losses, top1, split = read_metrics(metrics)
    if not steps:
        sys.exit(f"plot_run.py: error: {metrics} has no train records yet")

    figure, (loss_axes, top1_axes) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axes.plot(steps, losses, color="0.8", linewidth=0.6, label="logged")
    loss_axes.plot(steps, moving_mean(losses, args.smooth), color="C0", label=f"mean of {args.smooth}")
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("training loss")
    loss_axes.set_yscale("log")
    loss_axes.legend()
    for capacity in sorted(top1):
        points = top1[capacity]
        top1_axes.plot([s for s, _ in points], [t for _, t in points], marker="o", label=f"e_c {capacity:g}")
    top1_axes.set_xlabel("step")
    top1_axes.set_ylabel(f"top-1 on '{split}' (%)" if split else "top-1 (%)")
    if top1:
        top1_axes.legend(fontsize="small")
    else:
        top1_axes.text(0.5, 0.5, "no evaluation yet", ha="center", transform=top1_axes.transAxes)
    figure.suptitle(os.path.abspath(args.run_dir))
    figure.tight_layout()
    out = args.out or os.path.join(args.run_dir, "curves.png")
    figure.savefig(out, dpi=110)
    for capacity in sorted(top1):
        print(f"e_c {capacity:g}: " + ", ".join(f"step {s} {t:.2f}%" for s, t in top1[capacity]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
