"""PyTorch side of the GPU step benchmark (bench/gpu_step.cpp): the reference
model of tests/torch/mone_torch.py at the s16 shape on the GPU, bf16 autocast
with fp32 master weights and a fused AdamW, timed with CUDA events at each
effective capacity. Prints one JSON line per capacity, the same keys as
`mone-bench-gpu-step --json`:

  {"impl": "pytorch", "preset": "s16", "capacity": 0.5, "ms_per_step": ..., "img_per_s": ..., ...}

The reference model routes with a gather per layer (NestedTokens), not the
expert-sorted layout, so it is the straightforward PyTorch implementation,
not a tuned one. Run on the GPU machine:

  python3 bench/torch_gpu_step.py [--preset s16] [--batch 256] [--precision bf16] [--compile]
"""

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))
import mone_torch as mt  # noqa: E402

PRESETS = {
    "tiny": mt.Config(),
    "s16": mt.Config(image_height=224, image_width=224, channels=3, patch=16, dim=384, depth=12, heads=6,
                     classes=1000),
    "b16": mt.Config(image_height=224, image_width=224, channels=3, patch=16, dim=768, depth=12, heads=12,
                     classes=1000),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="s16")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--capacities", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_gpu_step.py: no CUDA device visible to PyTorch")

    torch.manual_seed(0)
    config = PRESETS[args.preset]
    device = torch.device("cuda")
    model = mt.MoNEViT(config).to(device)
    forward = torch.compile(model) if args.compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    images = torch.randn(args.batch, config.image_height, config.image_width, config.channels, device=device)
    labels = torch.randint(config.classes, (args.batch,), device=device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32

    def step(capacity):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=args.precision == "bf16"):
            loss = F.cross_entropy(forward(images, capacity).logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    for capacity in args.capacities:
        for _ in range(args.warmup):
            step(capacity)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(args.steps):
            step(capacity)
        stop.record()
        torch.cuda.synchronize()
        ms = start.elapsed_time(stop) / args.steps
        print(json.dumps({
            "impl": "pytorch" + ("-compile" if args.compile else ""), "preset": args.preset, "capacity": capacity,
            "batch": args.batch, "precision": args.precision, "ms_per_step": round(ms, 3),
            "img_per_s": round(args.batch / (ms / 1e3), 1),
        }), flush=True)


if __name__ == "__main__":
    main()
