#!/usr/bin/env python3
"""The table and plot of a scaling study submitted by slurm/scaling.sh.

    scripts/scaling_report.py STUDY_DIR [--skip 10] [--png FILE] [--markdown FILE]

Reads STUDY_DIR/study.tsv (one line per job: run, mode, ranks, nodes, batch,
job) and each run's metrics.jsonl, and prints per run:

  img/s        global batch / median step time
  img/s/rank   the same per rank
  efficiency   img/s/rank relative to the same mode's smallest run: for strong
               scaling the speedup divided by the rank ratio, for weak scaling
               how much of the per-rank throughput survives
  step time    median ms per step, split into data wait (the loader),
               exposed communication and compute (the rest)

Exposed communication is the time a rank waits for gradient allreduces that
did not overlap the backward pass. It is read from the first of COMM_FIELDS
that the records have; runs that do not log one show "n/l" and their compute
column includes the communication. Medians over the steps after --skip
(warm-up: first-touch allocations, thread start-up).

With --busbw (GB/s across nodes, as mone-bench-allreduce measured it), also
the analytic model's prediction for the same setting (scripts/scaling_model.py):
each run's compute time scaled from its mode's smallest run by the per-rank
batch, plus the exposed gradient allreduce of --model's gradients at that
busbw and --latency-us per ring step between nodes (and the model's NVLink
figures inside a node). The table gains "model img/s" and "model eff.", the
plot dashed model lines.

Writes the plot (throughput against ranks with the ideal line, and the step
time split per run) to --png (default STUDY_DIR/scaling.png), and the table to
--markdown if given.
"""
import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

import scaling_model  # noqa: E402  (beside this script)

# Names a per-step exposed-communication time (ms) may have in metrics.jsonl.
COMM_FIELDS = ("exposed_comm_ms", "comm_wait_ms", "comm_ms")


def read_study(study_dir):
    manifest = study_dir / "study.tsv"
    if not manifest.is_file():
        sys.exit(f"scaling_report: {manifest} not found; is {study_dir} a study written by slurm/scaling.sh?")
    with manifest.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def measure(study_dir, entry, skip):
    """The run's medians, or a note saying why there are none."""
    metrics = study_dir / entry["run"] / "metrics.jsonl"
    if not metrics.is_file():
        return {"note": f"no {metrics.relative_to(study_dir)} (job {entry['job']} not run yet?)"}
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steps = [r for r in records if r.get("type") == "train" and r["step"] > skip]
    if not steps:
        return {"note": f"no steps past {skip} logged (job {entry['job']} unfinished, or --log-every > 1?)"}
    ranks = int(entry["ranks"])
    logged_ranks = {r["ranks"] for r in steps if "ranks" in r}
    if logged_ranks and logged_ranks != {ranks}:
        return {"note": f"submitted with {ranks} ranks but the run logged ranks {sorted(logged_ranks)}"}
    comm_field = next((name for name in COMM_FIELDS if all(name in r for r in steps)), None)
    step_ms = statistics.median(r["ms_per_step"] for r in steps)
    data_ms = statistics.median(r["data_wait_ms"] for r in steps)
    comm_ms = statistics.median(r[comm_field] for r in steps) if comm_field else None
    images_per_second = int(entry["batch"]) * 1000.0 / step_ms
    return {
        "steps": len(steps),
        "step_ms": step_ms,
        "data_ms": data_ms,
        "comm_ms": comm_ms,
        "compute_ms": step_ms - data_ms - (comm_ms or 0.0),
        "img_s": images_per_second,
        "img_s_rank": images_per_second / ranks,
    }


def add_efficiency(rows):
    """Efficiency against the smallest measured run of each mode."""
    for mode in {row["mode"] for row in rows}:
        measured = [row for row in rows if row["mode"] == mode and "img_s" in row]
        if not measured:
            continue
        base = min(measured, key=lambda row: int(row["ranks"]))
        for row in measured:
            row["efficiency"] = row["img_s_rank"] / base["img_s_rank"]


def add_prediction(rows, model, busbw, latency_us):
    """The model's img/s and efficiency for each measured run (see the module's doc)."""
    nbytes = scaling_model.vit_parameters(**scaling_model.MODELS[model]) * 4
    for mode in {row["mode"] for row in rows}:
        measured = [row for row in rows if row["mode"] == mode and "img_s" in row]
        if not measured:
            continue
        base = min(measured, key=lambda row: int(row["ranks"]))
        base_per_rank = int(base["batch"]) / int(base["ranks"])
        for row in measured:
            ranks, nodes = int(row["ranks"]), int(row["nodes"])
            network = (ranks // nodes, (scaling_model.NVLINK_BUSBW, scaling_model.NVLINK_LATENCY),
                       (busbw * 1e9, latency_us * 1e-6))
            compute = base["compute_ms"] / 1e3 * (int(row["batch"]) / ranks) / base_per_rank
            _, _, step = scaling_model.predict_step(compute, nbytes, ranks, network, 2**20, 25 * 2**20)
            row["model_img_s"] = int(row["batch"]) / step
        for row in measured:
            row["model_efficiency"] = (row["model_img_s"] / int(row["ranks"])) / (base["model_img_s"] / int(base["ranks"]))


def table(rows):
    header = ("run", "mode", "ranks", "nodes", "batch", "img/s", "img/s/rank", "efficiency",
              "step ms", "data ms", "comm ms", "compute ms")
    predicted = any("model_img_s" in row for row in rows)
    if predicted:
        header += ("model img/s", "model eff.")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        head = [row["run"], row["mode"], row["ranks"], row["nodes"], row["batch"]]
        if "img_s" not in row:
            lines.append("| " + " | ".join(head) + f" | {row['note']} |" + " |" * (len(header) - 6))
            continue
        comm = "n/l" if row["comm_ms"] is None else f"{row['comm_ms']:.1f}"
        model = [f"{row['model_img_s']:.0f}", f"{row['model_efficiency']:.0%}"] if predicted else []
        lines.append("| " + " | ".join(head + [
            f"{row['img_s']:.0f}", f"{row['img_s_rank']:.0f}", f"{row['efficiency']:.0%}",
            f"{row['step_ms']:.1f}", f"{row['data_ms']:.2f}", comm, f"{row['compute_ms']:.1f}"] + model) + " |")
    return "\n".join(lines)


def plot(rows, path, title):
    measured = [row for row in rows if "img_s" in row]
    figure, (throughput, split) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, marker in (("strong", "o"), ("weak", "s")):
        runs = sorted((row for row in measured if row["mode"] == mode), key=lambda row: int(row["ranks"]))
        if not runs:
            continue
        ranks = [int(row["ranks"]) for row in runs]
        line, = throughput.plot(ranks, [row["img_s"] for row in runs], marker=marker, label=f"{mode} scaling")
        base = runs[0]
        ideal = [base["img_s"] * r / int(base["ranks"]) for r in ranks]
        throughput.plot(ranks, ideal, linestyle=":", color=line.get_color(), label=f"{mode}: ideal")
        if "model_img_s" in base:
            throughput.plot(ranks, [row["model_img_s"] for row in runs], linestyle="--", color=line.get_color(),
                            label=f"{mode}: model")
    throughput.set_xscale("log", base=2)
    all_ranks = sorted({int(row["ranks"]) for row in measured})
    throughput.set_xticks(all_ranks, [str(r) for r in all_ranks])
    throughput.minorticks_off()
    throughput.set_ylim(bottom=0)
    throughput.set_xlabel("ranks")
    throughput.set_ylabel("images / s (global)")
    throughput.set_title("throughput")
    throughput.legend()
    throughput.grid(alpha=0.3)

    names = [row["run"] for row in measured]
    compute = [row["compute_ms"] for row in measured]
    comm = [row["comm_ms"] or 0.0 for row in measured]
    data = [row["data_ms"] for row in measured]
    comm_logged = any(row["comm_ms"] is not None for row in measured)
    split.bar(names, compute, label="compute" if comm_logged else "compute (+ communication, not logged)")
    if comm_logged:
        split.bar(names, comm, bottom=compute, label="exposed communication")
    split.bar(names, data, bottom=[a + b for a, b in zip(compute, comm)], label="data wait")
    split.set_ylabel("ms per step (median)")
    split.set_title("step time")
    split.legend()
    split.tick_params(axis="x", rotation=30)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--skip", type=int, default=10, help="warm-up steps left out of the medians")
    parser.add_argument("--png", type=Path, help="plot file (default STUDY_DIR/scaling.png)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--title", default="mone scaling study", help="the plot's title")
    parser.add_argument("--busbw", type=float, help="measured allreduce busbw across nodes, GB/s: adds the model's prediction")
    parser.add_argument("--latency-us", type=float, default=50.0, help="the model's latency per ring step between nodes")
    parser.add_argument("--model", choices=sorted(scaling_model.MODELS), default="tiny", help="the studied preset")
    args = parser.parse_args()

    rows = [dict(entry, **measure(args.study_dir, entry, args.skip)) for entry in read_study(args.study_dir)]
    add_efficiency(rows)
    if args.busbw:
        add_prediction(rows, args.model, args.busbw, args.latency_us)
    text = table(rows)
    print(text)
    if not any(row.get("comm_ms") is not None for row in rows):
        print(f"\nexposed communication: not logged by these runs (none of {', '.join(COMM_FIELDS)} in "
              "metrics.jsonl); compute includes it.")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if any("img_s" in row for row in rows):
        png = args.png or args.study_dir / "scaling.png"
        plot(rows, png, args.title)
        print(f"plot: {png}")
    else:
        sys.exit("scaling_report: no run has measurements yet")
    return 0 if all("img_s" in row for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
