#!/usr/bin/env python3
"""torchvision's VisionTransformer trained with the main job's recipe: the dense reference of docs/results.md.

The model is torchvision's own `VisionTransformer` at tiny's size (image 28,
patch 4 with a 1-channel patch embedding, 6 layers, 4 heads, width 64, MLP
256, 10 classes) with its own initialisation; `--pool mean` replaces its
class token by the mean over the patch tokens (the pooling of our model), all
else equal, which is the class-token ablation of docs/results.md. The recipe
is scripts/main.ini's for a dense model: batch 64, AdamW (0.9, 0.999, eps
1e-8) at lr 2e-3 with weight decay 0.05 on the weight matrices only, 200
linear warm-up steps then cosine to 1e-5 at the last step, gradient norm
clipped at 1, no augmentation. Images are read from our HDF5 shards (the
same train / val / test split) and normalised with the manifest's mean and
std; the order is torch's own shuffle per epoch (an independent pipeline,
not our loader's sequence). Prints one JSON line per evaluation.

Needs Debian's python3-torchvision (scripts/setup.sh installs it):
    /usr/bin/python3 scripts/torchvision_baseline.py --data datasets/fashion-mnist [--pool mean] [--seed 0]
"""

import argparse
import json
import math
import os
import sys
import time

# Debian's torch calls OpenBLAS, which otherwise starts its own pool of one
# thread per core beside torch's --threads: on 2 shared cores that took 20%
# of a core from the training beside it and slowed this one. Set before torch
# loads OpenBLAS; the user's setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    from torchvision.models.vision_transformer import Encoder, VisionTransformer
except ImportError:
    sys.exit("torchvision_baseline.py: error: torchvision is missing (apt-get install python3-torchvision)")


def read_split(directory, split):
    with h5py.File(os.path.join(directory, "manifest.h5"), "r") as manifest:
        names = [name.decode() for name in manifest[f"splits/{split}/shards"][()]]
        mean = float(manifest["mean"][0])
        std = float(manifest["std"][0])
    images, labels = [], []
    for name in names:
        with h5py.File(os.path.join(directory, name), "r") as shard:
            images.append(shard["images"][()])
            labels.append(shard["labels"][()])
    pixels = torch.from_numpy(np.concatenate(images)).float().div_(255).sub_(mean).div_(std)
    return pixels.permute(0, 3, 1, 2).contiguous(), torch.from_numpy(np.concatenate(labels)).long()


class MeanPooledViT(VisionTransformer):
    """torchvision's ViT without the class token: the encoder (its position
    embedding one row shorter) runs on the patch tokens, and the head reads
    their mean after the final LayerNorm."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        del self.class_token
        self.seq_length -= 1
        self.encoder = Encoder(self.seq_length, kwargs["num_layers"], kwargs["num_heads"], kwargs["hidden_dim"],
                               kwargs["mlp_dim"], 0.0, 0.0, self.norm_layer)

    def forward(self, x):
        return self.heads(self.encoder(self._process_input(x)).mean(dim=1))


def build_model(pool):
    size = dict(image_size=28, patch_size=4, num_layers=6, num_heads=4, hidden_dim=64, mlp_dim=256, num_classes=10)
    model = MeanPooledViT(**size) if pool == "mean" else VisionTransformer(**size)
    # One input channel; torchvision's own initialisation of the patch embedding.
    conv = torch.nn.Conv2d(1, 64, kernel_size=4, stride=4)
    torch.nn.init.trunc_normal_(conv.weight, std=math.sqrt(1.0 / (conv.in_channels * 4 * 4)))
    torch.nn.init.zeros_(conv.bias)
    model.conv_proj = conv
    return model


def learning_rate(step, total, peak, warmup, minimum):
    """scripts/main.ini's schedule, as trainer/lr_schedule.cpp."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup - 1))
    return minimum + 0.5 * (peak - minimum) * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def top1(model, images, labels):
    model.eval()
    correct = sum(int((model(images[i:i + 500]).argmax(1) == labels[i:i + 500]).sum())
                  for i in range(0, len(labels), 500))
    model.train()
    return 100.0 * correct / len(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset directory (mone data)")
    parser.add_argument("--pool", choices=["class-token", "mean"], default="class-token")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.steps <= 0 or args.eval_every <= 0:
        parser.error("--steps and --eval-every must be positive")

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train_images, train_labels = read_split(args.data, "train")
    val_images, val_labels = read_split(args.data, "val")
    test_images, test_labels = read_split(args.data, "test")
    model = build_model(args.pool)
    decayed = [p for name, p in model.named_parameters() if name.endswith("weight") and p.dim() >= 2]
    others = [p for name, p in model.named_parameters() if not (name.endswith("weight") and p.dim() >= 2)]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.05}, {"params": others, "weight_decay": 0.0}],
                                  lr=2e-3, betas=(0.9, 0.999), eps=1e-8)

    batch, order, cursor = 64, torch.randperm(len(train_labels)), 0
    start = time.perf_counter()
    for step in range(args.steps):
        if cursor + batch > len(order):
            order, cursor = torch.randperm(len(train_labels)), 0
        index = order[cursor:cursor + batch]
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, 2e-3, 200, 1e-5)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(train_images[index]), train_labels[index])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            record = {"model": f"torchvision ViT, pool {args.pool}", "seed": args.seed, "step": step + 1,
                      "loss": round(loss.item(), 4), "val_top1": round(top1(model, val_images, val_labels), 2),
                      "seconds": round(time.perf_counter() - start, 1)}
            if step + 1 == args.steps:
                record["test_top1"] = round(top1(model, test_images, test_labels), 2)
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
