#!/usr/bin/python3
"""Accuracy against GFLOPs per image for the models of the results study.

Each argument is LABEL=CSV, an evaluation file written by `mone eval`
(eval/<split>-step-N.csv: requested_capacity, realised_capacity, top1, loss,
gflops_per_image, samples). A file with several capacities is drawn as a
curve (one model, many budgets), a file with one row as a point. Prints the
table as Markdown and writes the plot to --out.

  /usr/bin/python3 scripts/plot_study.py --out docs/accuracy-vs-gflops.png \
      "MoNE random=runs/study/random/eval/test-step-00004000.csv" "dense D64=runs/study/dense/eval/test-step-00004000.csv"
"""

import argparse
import csv
import sys

import matplotlib

matplotlib.use("Agg")  # no display on build machines
import matplotlib.pyplot as plt


def labelled(item, program):
    """'LABEL=VALUE' as (LABEL, VALUE); exits naming `program` otherwise."""
    label, sep, value = item.partition("=")
    if not sep:
        sys.exit(f"{program}: error: '{item}' is not LABEL=VALUE")
    return label, value


def read_rows(path):
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if not rows:
        sys.exit(f"plot_study.py: error: '{path}' has no evaluation rows")
    return sorted(rows, key=lambda r: r["gflops_per_image"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--title", default="Fashion-MNIST test: accuracy against compute")
    parser.add_argument("--quoted", action="append", default=[], metavar="LABEL=GFLOPS:TOP1",
                        help="a point measured elsewhere and quoted (top-1 in percent), drawn hollow")
    parser.add_argument("series", nargs="+", help="LABEL=CSV")
    args = parser.parse_args()

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    print("| model | e_c requested | e_c realised | top-1 (test) | GFLOPs / image |")
    print("|---|---|---|---|---|")
    for item in args.series:
        label, path = labelled(item, "plot_study.py")
        rows = read_rows(path)
        x = [r["gflops_per_image"] * 1000 for r in rows]
        y = [100 * r["top1"] for r in rows]
        if len(rows) > 1:
            ax.plot(x, y, marker="o", label=label)
            for r, xi, yi in zip(rows, x, y):
                ax.annotate(f'{r["requested_capacity"]:g}', (xi, yi), textcoords="offset points",
                            xytext=(4, -10), fontsize=7)
        else:
            ax.plot(x, y, marker="s", linestyle="none", markersize=8, label=label)
        for r in rows:
            print(f'| {label} | {r["requested_capacity"]:g} | {r["realised_capacity"]:.4f} | '
                  f'{100 * r["top1"]:.2f}% | {r["gflops_per_image"]:.5f} |')
    for item in args.quoted:
        label, point = labelled(item, "plot_study.py")
        gflops, colon, top1 = point.partition(":")
        if not colon:
            sys.exit(f"plot_study.py: error: '{item}' is not LABEL=GFLOPS:TOP1")
        ax.plot([float(gflops) * 1000], [float(top1)], marker="D", linestyle="none", markersize=7,
                markerfacecolor="none", label=label)
        print(f"| {label} | 1 | | {float(top1):.2f}% | {float(gflops):.5f} |")
    ax.set_xlabel("MFLOPs per image (forward, 1 multiply-add = 1 FLOP)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
