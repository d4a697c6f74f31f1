"""CPU training-step benchmark: our model against the PyTorch model of the
cross-check, in one invocation, same batch, same capacities, same threads.

  source scripts/blas-env.sh && /usr/bin/python3 bench/cpu_step.py --build build [--steps 20]

Both sides use the same OpenBLAS library and kernels (OPENBLAS_CORETYPE,
printed in the header line).

Prints one table: img/s and ms/step of each, our speed-up over PyTorch at the
same e_c and thread count, and each e_c's speed-up over e_c = 1. Then, unless
--no-torchvision, torchvision's VisionTransformer at the same size (what a
user would train instead) at each thread count, and the dense step of each
side at its best thread count: ours at e_c = 1 against torchvision's.

With --chunk-images N our steps run their batch in chunks of N images
(Model::set_chunk_images: the chunks run side by side, one per thread).

With --rounds R (default 3) the sides run in turn R times, ours, PyTorch's,
torchvision's, and each row shows the median of its R rounds' step times:
on a shared machine whose speed drifts by minutes, each side then samples
the same minutes.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))


def json_lines(command, env=None):
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def threads_and_capacity(row):
    return row["threads"], float(row["capacity"])


def median_of_rounds(rounds, key):
    """One row per key, its ms_per_step the median over the rounds (img/s and
    GFLOP/s follow it); the other fields from the first round."""
    by_key = {}
    for rows in rounds:
        for r in rows:
            by_key.setdefault(key(r), []).append(r)
    merged = []
    for rows in by_key.values():
        times = sorted(r["ms_per_step"] for r in rows)
        row = dict(rows[0], ms_per_step=times[len(times) // 2], rounds=len(rows))
        scale = rows[0]["ms_per_step"] / row["ms_per_step"]
        for rate in ("img_per_s", "gflop_per_s"):
            if rate in row:
                row[rate] = rows[0][rate] * scale
        merged.append(row)
    return merged


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(here, "..", "build"))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--capacities", default="1,0.5,0.3")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-adamw", action="store_true", help="forward and backward only")
    parser.add_argument("--no-torchvision", action="store_true", help="skip torchvision's VisionTransformer")
    parser.add_argument("--rounds", type=int, default=3, help="runs of every side, in turn (median reported)")
    parser.add_argument("--chunk-images", type=int, default=0,
                        help="ours: each step's batch in chunks of this many images (mone-bench-step --chunk-images; "
                             "0: whole)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    if args.chunk_images < 0:
        parser.error("--chunk-images must be 0 or more")

    common = ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if not args.no_adamw:
        common.append("--adamw")
    # Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine
    # spinning workers steal the cores that the other thread needs.
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    mone_step = [os.path.join(args.build, "bench", "mone-bench-step"), "--json", "--capacities", args.capacities,
                 "--threads", args.threads, "--chunk-images", str(args.chunk_images)] + common
    torch_step = [sys.executable, os.path.join(here, "torch_step.py"), "--threads"] + args.threads.split(",") + common
    ours_rounds, theirs_rounds, vision_rounds = [], [], []
    for _ in range(args.rounds):
        ours_rounds.append(json_lines(mone_step, env))
        theirs_rounds.append(json_lines(torch_step + ["--capacities"] + args.capacities.split(",")))
        if not args.no_torchvision:
            vision_rounds.append(json_lines(torch_step + ["--model", "torchvision"]))
    ours = median_of_rounds(ours_rounds, threads_and_capacity)
    theirs = median_of_rounds(theirs_rounds, threads_and_capacity)
    vision = median_of_rounds(vision_rounds, lambda r: r["threads"])
    torch_rate = {(r["threads"], float(r["capacity"])): r for r in theirs}

    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()} {platform.processor() or platform.machine()}, "
          f"nproc={os.cpu_count()}, batch {args.batch}, median of {args.rounds} round(s) of the median of "
          f"{args.steps} steps, "
          f"{'forward+backward' if args.no_adamw else 'forward+backward+AdamW'}, "
          f"{f'ours in chunks of {args.chunk_images} images, ' if 0 < args.chunk_images < args.batch else ''}"
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}")
    print(f"{'threads':>7} {'e_c':>5} {'realised':>8} | {'mone ms':>8} {'mone img/s':>10} {'GFLOP/s':>8} "
          f"{'vs e_c=1':>8} | {'torch ms':>8} {'torch img/s':>11} {'vs e_c=1':>8} | {'mone/torch':>10}")
    dense = {}
    for r in ours:
        key = (r["threads"], float(r["capacity"]))
        t = torch_rate[key]
        if key[1] == 1.0:
            dense[key[0]] = (r["img_per_s"], t["img_per_s"])
        base_ours, base_torch = dense.get(key[0], (r["img_per_s"], t["img_per_s"]))
        print(f"{r['threads']:>7} {r['capacity']:>5} {r['realised']:>8.4f} | {r['ms_per_step']:>8.2f} "
              f"{r['img_per_s']:>10.1f} {r['gflop_per_s']:>8.2f} {r['img_per_s'] / base_ours:>7.2f}x | "
              f"{t['ms_per_step']:>8.2f} {t['img_per_s']:>11.1f} {t['img_per_s'] / base_torch:>7.2f}x | "
              f"{r['img_per_s'] / t['img_per_s']:>9.2f}x")
    if not vision:
        return

    print("\n# dense step (e_c = 1), each side at its best thread count")
    print(f"{'impl':<34} {'threads':>7} {'ms':>8} {'img/s':>8} | {'mone/this':>9}")
    best = {}
    for name, rows in (("mone", [r for r in ours if float(r["capacity"]) == 1.0]),
                       ("PyTorch (cross-check model)", [r for r in theirs if float(r["capacity"]) == 1.0]),
                       ("torchvision VisionTransformer", vision)):
        for r in rows:
            print(f"{name:<34} {r['threads']:>7} {r['ms_per_step']:>8.2f} {r['img_per_s']:>8.1f} |")
        best[name] = max(rows, key=lambda r: r["img_per_s"])
    for name, r in best.items():
        print(f"{'best: ' + name:<34} {r['threads']:>7} {r['ms_per_step']:>8.2f} {r['img_per_s']:>8.1f} | "
              f"{best['mone']['img_per_s'] / r['img_per_s']:>8.2f}x")


if __name__ == "__main__":
    main()
