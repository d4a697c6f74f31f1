#!/usr/bin/env python3
"""scripts/scaling_report.py on a made-up study whose numbers are known:
img/s, efficiency and the step time split, with and without a logged
communication time, and an unfinished run reported as such; with --busbw,
the analytic model's prediction beside each run.

    test_scaling_report.py SOURCE_DIR
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def write_run(study, run, step_ms, data_ms, comm_ms=None, steps=30):
    (study / run).mkdir(parents=True)
    with (study / run / "metrics.jsonl").open("w") as f:
        for step in range(1, steps + 1):
            record = {"type": "train", "step": step, "loss": 2.3, "ms_per_step": step_ms, "data_wait_ms": data_ms}
            if comm_ms is not None:
                record["comm_ms"] = comm_ms
            # Warm-up steps far off the median: --skip must leave them out.
            if step <= 10:
                record["ms_per_step"] = 10 * step_ms
            f.write(json.dumps(record) + "\n")


def main():
    report = Path(sys.argv[1]) / "scripts" / "scaling_report.py"
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp)
        (study / "study.tsv").write_text(
            "run\tmode\tranks\tnodes\tbatch\tjob\n"
            "strong-n1\tstrong\t1\t1\t128\t1\n"
            "strong-n2\tstrong\t2\t2\t128\t2\n"
            "weak-n1\tweak\t1\t1\t32\t3\n"
            "weak-n2\tweak\t2\t1\t64\t4\n")
        write_run(study, "strong-n1", step_ms=100.0, data_ms=1.0)
        write_run(study, "strong-n2", step_ms=64.0, data_ms=1.0, comm_ms=8.0)
        write_run(study, "weak-n1", step_ms=40.0, data_ms=2.0)
        # weak-n2 never ran.
        failures = []

        def run_report(*options):
            result = subprocess.run([sys.executable, str(report), str(study), "--markdown", str(study / "table.md"),
                                     *options], capture_output=True, text=True)
            print(result.stdout, result.stderr)
            lines = (study / "table.md").read_text().splitlines()
            header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
            return result, header, {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[1:-1]]
                                    for line in lines[2:]}

        def expect(run, column, want):
            got = rows[run][header.index(column)]
            if got != want:
                failures.append(f"{run} {column}: {got!r}, expected {want!r}")

        result, header, rows = run_report()
        expect("strong-n1", "img/s", "1280")         # 128 images / 0.1 s
        expect("strong-n2", "img/s", "2000")         # 128 / 0.064 s
        expect("strong-n2", "img/s/rank", "1000")
        expect("strong-n2", "efficiency", "78%")     # 1000 / 1280
        expect("strong-n1", "comm ms", "n/l")
        expect("strong-n2", "comm ms", "8.0")
        expect("strong-n2", "compute ms", "55.0")    # 64 - 1 - 8
        expect("weak-n1", "efficiency", "100%")
        if "not run yet" not in rows["weak-n2"][5]:
            failures.append(f"weak-n2: {rows['weak-n2']}, expected a 'not run yet' note")
        if result.returncode != 1:
            failures.append(f"exit code {result.returncode}, expected 1 (a run without measurements)")
        if not (study / "scaling.png").stat().st_size:
            failures.append("no plot")

        # The model: strong-n2 (2 nodes, 1 rank each) computes 99 ms * 64/128 =
        # 49.5 ms; tiny's 305172 gradients (1220688 bytes) go in a 1 MiB bucket,
        # hidden behind the backward pass, and a last one of 172112 bytes that
        # is not: 172112 / 0.5 GB/s + 2 * 50 us = 0.444 ms. 128 / 49.944 ms =
        # 2563 img/s; strong-n1 (no allreduce) 128 / 99 ms = 1293.
        result, header, rows = run_report("--busbw", "0.5", "--latency-us", "50")
        expect("strong-n1", "model img/s", "1293")
        expect("strong-n2", "model img/s", "2563")
        expect("strong-n2", "model eff.", "99%")
        expect("weak-n1", "model eff.", "100%")
        if failures:
            print("FAILED:\n  " + "\n  ".join(failures))
            return 1
        print("PASSED")
        return 0


if __name__ == "__main__":
    sys.exit(main())
