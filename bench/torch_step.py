"""PyTorch side of the training-step benchmark: the reference model of
tests/torch/mone_torch.py (preset tiny, random weights) timed for forward and
backward, and the AdamW step with --adamw, at each effective capacity and
thread count. Prints one JSON line per configuration:

  {"impl": "pytorch", "threads": 1, "capacity": 0.5, "img_per_s": ..., "ms_per_step": ..., ...}

With --model torchvision it times torchvision's own VisionTransformer at
tiny's size instead (scripts/torchvision_baseline.py's model: what a user
would train without us), dense, so only at capacity 1 ("impl": "torchvision").

Run: /usr/bin/python3 bench/torch_step.py [--batch 128] [--steps 10] [--adamw] [--model torchvision]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(root, "tests", "torch"))
import mone_torch as mt  # noqa: E402


def step_milliseconds(model, logits, optimizer, images, labels, capacity, warmup, steps):
    """Median wall time of one training step, after `warmup` untimed steps."""
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        F.cross_entropy(logits(images, capacity), labels).backward()
        if optimizer is not None:
            optimizer.step()
        if step >= warmup:
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--capacities", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps; the median is reported")
    parser.add_argument("--adamw", action="store_true", help="include a torch.optim.AdamW step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", choices=["mone", "torchvision"], default="mone")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    config = mt.TINY
    if args.model == "torchvision":
        sys.path.insert(0, os.path.join(root, "scripts"))
        from torchvision_baseline import build_model  # needs python3-torchvision

        model = build_model("class-token")
        logits = lambda x, capacity: model(x)  # noqa: E731 -- dense: the capacity does not apply
        images = torch.randn(args.batch, config.channels, config.image_height, config.image_width)
        args.capacities = [1.0]
    else:
        model = mt.MoNEViT(config)
        logits = lambda x, capacity: model(x, capacity).logits  # noqa: E731
        images = torch.randn(args.batch, config.image_height, config.image_width, config.channels)
    labels = torch.randint(config.classes, (args.batch,))

    for threads in args.threads:
        torch.set_num_threads(threads)
        for capacity in args.capacities:
            # A fresh optimizer per configuration, so each starts from the same state.
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3) if args.adamw else None
            ms = step_milliseconds(model, logits, optimizer, images, labels, capacity, args.warmup, args.steps)
            print(json.dumps({
                "impl": "pytorch" if args.model == "mone" else "torchvision", "threads": threads, "capacity": capacity,
                "img_per_s": round(args.batch / (ms / 1e3), 1), "ms_per_step": round(ms, 3),
                "batch": args.batch, "optimizer": "adamw" if args.adamw else "none",
            }), flush=True)


if __name__ == "__main__":
    main()
