#!/usr/bin/env python3
"""Analytic weak-scaling model of mone's data-parallel training on H100 nodes.

Prints, for ViT-S/16 and ViT-B/16 MoNE models at e_c = 1 (the most compute,
so the least communication-bound case is not flattered), the predicted step
time and scaling efficiency at 8, 16, 32 and 64 GPUs. docs/distributed.md,
"Scaling model", states and discusses the assumptions; change them here:

  python3 scripts/scaling_model.py [--mfu 0.35] [--grad-bytes 4] [--batch-s16 256] ...

The same model for a measured setting (a study of slurm/scaling.sh): the
compute time of one rank, measured, instead of FLOPs and MFU, and the busbw
measured with mone-bench-allreduce across the nodes' link:

  python3 scripts/scaling_model.py --model tiny --compute-ms 46 --busbw 0.5 \
      --latency-us 50 --gpus-per-node 1 --ranks 1,2,4

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
    # 28x28x1 images in 4x4 patches, as in the tests and the local studies
    "tiny": dict(dim=64, depth=6, tokens=49, patch_dim=16, classes=10),
}


def allreduce_seconds(nbytes, ranks, network):
    """network: (ranks per node, busbw and latency within a node, across nodes)."""
    if ranks == 1:
        return 0.0
    per_node, inside, across = network
    busbw, latency = inside if ranks <= per_node else across
    return 2 * (ranks - 1) / ranks * nbytes / busbw + 2 * (ranks - 1) * latency


def bucket_sizes(total, first, rest):
    sizes, left = [], total
    while left > 0:
        size = min(left, first if not sizes else rest)
        sizes.append(size)
        left -= size
    return sizes


def predict_step(compute, nbytes, ranks, network, first_bucket, bucket):
    """(allreduce, exposed, step) seconds of one step; compute in seconds, nbytes of gradients."""
    times = [allreduce_seconds(size, ranks, network) for size in bucket_sizes(nbytes, first_bucket, bucket)]
    total = sum(times)
    hideable = compute * 2 / 3 - times[0]
    exposed = max(total - max(hideable, 0.0), times[-1]) if ranks > 1 else 0.0
    return total, exposed, compute + exposed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mfu", type=float, default=0.35, help="model FLOP utilisation of the compute")
    parser.add_argument("--grad-bytes", type=int, default=4, help="bytes per gradient element sent (4: fp32, 2: bf16)")
    parser.add_argument("--batch-s16", type=int, default=256, help="per-GPU batch of s16")
    parser.add_argument("--batch-b16", type=int, default=128, help="per-GPU batch of b16")
    parser.add_argument("--bucket-mb", type=float, default=25.0)
    parser.add_argument("--first-bucket-mb", type=float, default=1.0)
    parser.add_argument("--model", choices=sorted(MODELS), action="append", help="only these models (default s16, b16)")
    parser.add_argument("--batch", type=int, help="per-rank batch of every model (instead of --batch-s16/-b16)")
    parser.add_argument("--compute-ms", type=float, help="measured compute time of a step (instead of FLOPs / MFU)")
    parser.add_argument("--busbw", type=float, help="busbw across nodes, GB/s (default %g)" % (IB_BUSBW / 1e9))
    parser.add_argument("--latency-us", type=float, help="latency per ring step across nodes (default %g)" % (IB_LATENCY * 1e6))
    parser.add_argument("--gpus-per-node", type=int, default=GPUS_PER_NODE, help="ranks per node")
    parser.add_argument("--ranks", default="1,8,16,32,64", help="rank counts, comma-separated")
    args = parser.parse_args()
    across = ((args.busbw or IB_BUSBW / 1e9) * 1e9, (args.latency_us or IB_LATENCY * 1e6) * 1e-6)
    network = (args.gpus_per_node, (NVLINK_BUSBW, NVLINK_LATENCY), across)
    rank_counts = [int(r) for r in args.ranks.split(",")]

    if args.compute_ms is None:
        print(f"H100 SXM, {args.gpus_per_node} GPUs/node; MFU {args.mfu:.0%} of {PEAK_BF16_DENSE / 1e12:.0f} TFLOP/s; "
              f"busbw {NVLINK_BUSBW / 1e9:.0f} GB/s in a node, {across[0] / 1e9:g} GB/s across nodes; "
              f"{args.grad_bytes}-byte gradients; buckets {args.first_bucket_mb:g} MiB first, then {args.bucket_mb:g} MiB")
    else:
        print(f"measured compute {args.compute_ms:g} ms per step; {args.gpus_per_node} rank(s)/node; busbw "
              f"{across[0] / 1e9:g} GB/s and {across[1] * 1e6:g} us per ring step across nodes; "
              f"{args.grad_bytes}-byte gradients; buckets {args.first_bucket_mb:g} MiB first, then {args.bucket_mb:g} MiB")
    header = (f"{'model':>5} {'GPUs':>5} {'batch/GPU':>9} {'grad MB':>8} {'compute ms':>10} "
              f"{'allreduce ms':>12} {'exposed ms':>10} {'step ms':>8} {'efficiency':>10}")
    print(header)
    for name in args.model or ["s16", "b16"]:
        shape = MODELS[name]
        batch = args.batch or (args.batch_s16 if name == "s16" else args.batch_b16)
        if args.compute_ms is None:
            compute = 3 * vit_forward_flops(**shape) * batch / (args.mfu * PEAK_BF16_DENSE)
        else:
            compute = args.compute_ms / 1e3
        nbytes = vit_parameters(**shape) * args.grad_bytes
        for ranks in rank_counts:
            total, exposed, step = predict_step(compute, nbytes, ranks, network, args.first_bucket_mb * 2**20,
                                                args.bucket_mb * 2**20)
            print(f"{name:>5} {ranks:>5} {batch:>9} {nbytes / 1e6:>8.1f} {compute * 1e3:>10.1f} "
                  f"{total * 1e3:>12.2f} {exposed * 1e3:>10.2f} {step * 1e3:>8.1f} {compute / step:>10.1%}")


if __name__ == "__main__":
    main()
