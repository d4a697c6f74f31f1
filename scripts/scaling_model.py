#!/usr/bin/env python3
"""Analytic weak-scaling model of mone's data-parallel training on H100 nodes.

Prints, for ViT-S/16 and ViT-B/16 MoNE models at e_c = 1 (the most compute,
so the least communication-bound case is not flattered), the predicted step
time and scaling efficiency at 8, 16, 32 and 64 GPUs. docs/distributed.md,
"Scaling model", states and discusses the assumptions; change them here:

  python3 scripts/scaling_model.py [--mfu 0.35] [--grad-bytes 4] [--batch-s16 256] ...

Model, per optimizer step and GPU (weak scaling: the per-GPU batch is fixed):
  compute   = 3 * forward FLOPs per image * per-GPU batch / (MFU * peak)
  allreduce = sum over buckets of (2(R-1)/R * bucket bytes / busbw + 2(R-1) * latency)
              (ring allreduce; busbw in the nccl-tests sense)
  exposed   = max(allreduce - hideable, last bucket's allreduce)
              where hideable = the backward time after the first bucket is
              ready (backward = 2/3 of compute; the first bucket, the head and
              last blocks, is ready almost at once), and the last bucket (the
              embeddings, ready when backward ends) can never hide.
  step      = compute + exposed;   efficiency = compute / step
"""
import argparse
import math

PEAK_BF16_DENSE = 989e12  # H100 SXM, bf16 dense tensor-core FLOP/s
NVLINK_BUSBW = 370e9      # intra-node ring busbw (8 GPUs, NVLink 4 / NVSwitch)
IB_BUSBW = 45e9           # inter-node ring busbw: one 400 Gb/s NIC per GPU
NVLINK_LATENCY = 2e-6     # per ring step (NCCL LL128-class latency)
IB_LATENCY = 5e-6         # per ring step once the ring spans nodes (pessimistic: every hop charged)
GPUS_PER_NODE = 8


def vit_forward_flops(dim, depth, tokens, patch_dim, classes, mlp_ratio=4):
    """Forward FLOPs per image (1 multiply-add = 2 FLOPs) of a dense ViT, e_c = 1."""
    per_token_block = 4 * dim * dim + 2 * mlp_ratio * dim * dim  # qkv + proj, fc1 + fc2 (MACs)
    attention = 2 * tokens * dim  # QK^T and AV (MACs per token)
    macs = tokens * (depth * (per_token_block + attention) + patch_dim * dim) + dim * classes
    return 2 * macs


def vit_parameters(dim, depth, tokens, patch_dim, classes, experts=4, mlp_ratio=4):
    block = 4 * dim * dim + 2 * mlp_ratio * dim * dim + (3 + 1 + mlp_ratio + 1) * dim + 4 * dim + 1
    embedding = patch_dim * dim + dim + tokens * dim + dim * experts + experts
    return embedding + depth * block + 2 * dim + dim * classes + classes


MODELS = {
    # name: dim, depth, tokens (224/16)^2, patch_dim 16*16*3, classes
    "s16": dict(dim=384, depth=12, tokens=196, patch_dim=768, classes=1000),
    "b16": dict(dim=768, depth=12, tokens=196, patch_dim=768, classes=1000),
}


def allreduce_seconds(nbytes, ranks):
    if ranks == 1:
        return 0.0
    busbw, latency = (NVLINK_BUSBW, NVLINK_LATENCY) if ranks <= GPUS_PER_NODE else (IB_BUSBW, IB_LATENCY)
    return 2 * (ranks - 1) / ranks * nbytes / busbw + 2 * (ranks - 1) * latency


def bucket_sizes(total, first, rest):
    sizes, left = [], total
    while left > 0:
        size = min(left, first if not sizes else rest)
        sizes.append(size)
        left -= size
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mfu", type=float, default=0.35, help="model FLOP utilisation of the compute")
    parser.add_argument("--grad-bytes", type=int, default=4, help="bytes per gradient element sent (4: fp32, 2: bf16)")
    parser.add_argument("--batch-s16", type=int, default=256, help="per-GPU batch of s16")
    parser.add_argument("--batch-b16", type=int, default=128, help="per-GPU batch of b16")
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    parser.add_argument("--first-bucket-mb", type=float, default=1.0)
    args = parser.parse_args()

    print(f"H100 SXM, {GPUS_PER_NODE} GPUs/node; MFU {args.mfu:.0%} of {PEAK_BF16_DENSE / 1e12:.0f} TFLOP/s; "
          f"busbw {NVLINK_BUSBW / 1e9:.0f} GB/s in a node, {IB_BUSBW / 1e9:.0f} GB/s across nodes; "
          f"{args.grad_bytes}-byte gradients; buckets {args.first_bucket_mb:g} MiB first, then {args.bucket_mb:g} MiB")
    header = (f"{'model':>5} {'GPUs':>5} {'batch/GPU':>9} {'grad MB':>8} {'compute ms':>10} "
              f"{'allreduce ms':>12} {'exposed ms':>10} {'step ms':>8} {'efficiency':>10}")
    print(header)
    for name, shape in MODELS.items():
        batch = args.batch_s16 if name == "s16" else args.batch_b16
        flops = 3 * vit_forward_flops(**shape) * batch
        compute = flops / (args.mfu * PEAK_BF16_DENSE)
        nbytes = vit_parameters(**shape) * args.grad_bytes
        buckets = bucket_sizes(nbytes, args.first_bucket_mb * 2**20, args.bucket_mb * 2**20)
        for ranks in (1, 8, 16, 32, 64):
            times = [allreduce_seconds(size, ranks) for size in buckets]
            total = sum(times)
            hideable = compute * 2 / 3 - times[0]
            exposed = max(total - max(hideable, 0.0), times[-1]) if ranks > 1 else 0.0
            step = compute + exposed
            print(f"{name:>5} {ranks:>5} {batch:>9} {nbytes / 1e6:>8.1f} {compute * 1e3:>10.1f} "
                  f"{total * 1e3:>12.2f} {exposed * 1e3:>10.2f} {step * 1e3:>8.1f} {compute / step:>10.1%}")


if __name__ == "__main__":
    main()
