#!/usr/bin/python3
"""Per-expert class histograms of Mobile V-MoE models (docs/results.md).

Each argument is LABEL=CSV, a `mone route` table of a V-MoE checkpoint
(<out>/experts-by-class.csv: class, name, expert_0, ..., images per top-1
expert). Draws one panel per model: for each expert, a bar per class of the
share of that class's images routed there, and prints the tables as Markdown.

  /usr/bin/python3 scripts/plot_experts_by_class.py --out docs/vmoe-experts-by-class.png \
      "top-1, super-class loss=runs/vmoe/vmoe-k1-sc-route/experts-by-class.csv"
"""

import argparse
import csv

import matplotlib

matplotlib.use("Agg")  # no display on build machines
import matplotlib.pyplot as plt

from plot_study import labelled


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("tables", nargs="+", help="LABEL=CSV")
    args = parser.parse_args()
    fig, axes = plt.subplots(len(args.tables), 1, figsize=(8, 2.4 * len(args.tables)), dpi=110, squeeze=False)
    for ax, item in zip(axes[:, 0], args.tables):
        label, path = labelled(item, "plot_experts_by_class.py")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        experts = [key for key in rows[0] if key.startswith("expert_")]
        names = [row["name"] or row["class"] for row in rows]
        print(f"\n{label}: images of each class per top-1 expert\n")
        print("| class | " + " | ".join(e.replace("_", " ") for e in experts) + " |")
        print("|---|" + "---|" * len(experts))
        width = 0.8 / len(experts)
        for j, expert in enumerate(experts):
            share = [100 * int(row[expert]) / sum(int(row[e]) for e in experts) for row in rows]
            ax.bar([i + (j - (len(experts) - 1) / 2) * width for i in range(len(rows))], share, width,
                   label=expert.replace("_", " "))
        for row, name in zip(rows, names):
            print(f"| {name} | " + " | ".join(row[e] for e in experts) + " |")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(names, fontsize=7)
        ax.set_ylabel("% of the class")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
