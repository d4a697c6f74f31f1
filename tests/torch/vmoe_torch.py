"""An independent PyTorch Mobile V-MoE, for the cross-check of the C++ model.

Written from docs/method.md, section 5, not from the C++ code: a pre-LN ViT
(patch and position embedding, blocks, final LayerNorm, mean pooling, head)
whose last `moe_blocks` blocks replace the MLP by E expert MLPs. One router,
at the first MoE block, reads the mean over the image's tokens of that
block's LN1 output: probs = softmax(W x + b) over E. Each image takes its
top-k experts (highest probability first, ties to the lower expert); the
expert outputs are added with the chosen probabilities renormalised to sum
to 1. The loss is the cross-entropy plus `router_loss_weight` times the
cross-entropy of the router's probabilities towards the image's super-class.

Here every image runs through every expert it chose one image at a time, in
plain loops: no sorting, no grouping, so nothing is shared with the C++ layout.
Only the configuration fields come from mone_torch.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mone_torch as mt

LAYERNORM_EPS = mt.LAYERNORM_EPS


@dataclass
class VmoeConfig(mt.Config):
    """The ViT's shape (mone_torch's Config) and V-MoE's two fields."""
    experts: int = 3
    moe_blocks: int = 2
    top_k: int = 1


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, gelu_approximate: str):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.gelu_approximate = gelu_approximate

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate=self.gelu_approximate))


class Block(nn.Module):
    def __init__(self, c: VmoeConfig, moe: bool):
        super().__init__()
        self.heads = c.heads
        self.norm1 = nn.LayerNorm(c.dim, eps=LAYERNORM_EPS)
        self.qkv = nn.Linear(c.dim, 3 * c.dim)
        self.proj = nn.Linear(c.dim, c.dim)
        self.norm2 = nn.LayerNorm(c.dim, eps=LAYERNORM_EPS)
        hidden = c.mlp_ratio * c.dim
        self.experts = nn.ModuleList(Mlp(c.dim, hidden, c.gelu_approximate) for _ in range(c.experts)) if moe else None
        self.mlp = None if moe else Mlp(c.dim, hidden, c.gelu_approximate)

    def attention(self, x_normed):
        batch, tokens, dim = x_normed.shape
        qkv = self.qkv(x_normed).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))

    def forward(self, x, choice=None):
        """x [B, N, D]; choice (MoE blocks): (experts [B, k], weights [B, k])."""
        z = x + self.attention(self.norm1(x))
        h = self.norm2(z)
        if self.mlp is not None:
            return z + self.mlp(h)
        experts, weights = choice
        rows = []
        for b in range(x.shape[0]):
            mixed = sum(weights[b, s] * self.experts[int(experts[b, s])](h[b]) for s in range(experts.shape[1]))
            rows.append(z[b] + mixed)
        return torch.stack(rows)


@dataclass
class VmoeOutput:
    logits: torch.Tensor        # [B, classes]
    router_probs: torch.Tensor  # [B, E]
    experts: torch.Tensor       # [B, k], best first


def top_k_choice(probs: torch.Tensor, k: int):
    """Experts by probability, ties to the lower index; weights renormalised over the k."""
    experts = []
    for row in probs.detach().tolist():
        experts.append(sorted(range(len(row)), key=lambda e: (-row[e], e))[:k])
    experts = torch.tensor(experts, dtype=torch.long)
    chosen = probs.gather(1, experts)
    return experts, chosen / chosen.sum(dim=1, keepdim=True)


class VmoeViT(nn.Module):
    def __init__(self, c: VmoeConfig):
        super().__init__()
        self.config = c
        self.first_moe = c.depth - c.moe_blocks
        self.patch_embed = nn.Linear(c.patch_dim, c.dim)
        self.pos_embed = nn.Parameter(torch.zeros(c.tokens, c.dim))
        self.router = nn.Linear(c.dim, c.experts)
        self.blocks = nn.ModuleList(Block(c, l >= self.first_moe) for l in range(c.depth))
        self.norm = nn.LayerNorm(c.dim, eps=LAYERNORM_EPS)
        self.head = nn.Linear(c.dim, c.classes)

    def forward(self, images: torch.Tensor) -> VmoeOutput:
        c, p = self.config, self.config.patch
        batch = images.shape[0]
        grid = images.reshape(batch, c.image_height // p, p, c.image_width // p, p, c.channels)
        patches = grid.permute(0, 1, 3, 2, 4, 5).reshape(batch, c.tokens, c.patch_dim)
        x = self.patch_embed(patches) + self.pos_embed
        probs, choice = None, None
        for l, block in enumerate(self.blocks):
            if l == self.first_moe:
                probs = torch.softmax(self.router(block.norm1(x).mean(dim=1)), dim=-1)
                choice = top_k_choice(probs, c.top_k)
            x = block(x, choice)
        logits = self.head(self.norm(x).mean(dim=1))
        return VmoeOutput(logits, probs, choice[0])

    def loss(self, output: VmoeOutput, labels: torch.Tensor, superclass: Optional[torch.Tensor],
             router_loss_weight: float) -> torch.Tensor:
        loss = F.cross_entropy(output.logits, labels)
        if superclass is not None:
            loss = loss + router_loss_weight * F.nll_loss(torch.log(output.router_probs), superclass)
        return loss

    # ---- the check file's names and layouts: linear weights [in, out]; the
    # experts of block l stacked as blocks.l.moe.fc{1,2}.{weight,bias} [E, ...].
    def file_tensors(self, gradients: bool) -> Dict[str, np.ndarray]:
        def value(t):
            # A parameter no gradient reached (an expert no image took) has gradient zero.
            if gradients:
                return t.grad.detach().numpy() if t.grad is not None else np.zeros(tuple(t.shape), np.float32)
            return t.detach().numpy()

        def linear(prefix, layer):
            return {prefix + ".weight": value(layer.weight).T, prefix + ".bias": value(layer.bias)}

        out = {"pos_embed": value(self.pos_embed)}
        out.update(linear("patch_embed", self.patch_embed))
        out.update(linear("router", self.router))
        out.update(linear("head", self.head))
        out.update({"norm.weight": value(self.norm.weight), "norm.bias": value(self.norm.bias)})
        for l, block in enumerate(self.blocks):
            p = f"blocks.{l}."
            for name, norm in (("norm1", block.norm1), ("norm2", block.norm2)):
                out.update({p + name + ".weight": value(norm.weight), p + name + ".bias": value(norm.bias)})
            out.update(linear(p + "attn.qkv", block.qkv))
            out.update(linear(p + "attn.proj", block.proj))
            if block.mlp is not None:
                out.update(linear(p + "mlp.fc1", block.mlp.fc1))
                out.update(linear(p + "mlp.fc2", block.mlp.fc2))
                continue
            for fc in ("fc1", "fc2"):
                layers = [getattr(expert, fc) for expert in block.experts]
                out[p + f"moe.{fc}.weight"] = np.stack([value(layer.weight).T for layer in layers])
                out[p + f"moe.{fc}.bias"] = np.stack([value(layer.bias) for layer in layers])
        return out

    def load_file_parameters(self, params: Dict[str, np.ndarray]):
        own = self.file_tensors(gradients=False)
        if set(own) != set(params):
            raise KeyError(f"parameter names differ: only in the model {sorted(set(own) - set(params))}, "
                           f"only in the file {sorted(set(params) - set(own))}")

        def put(parameter, array):
            parameter.copy_(torch.from_numpy(np.ascontiguousarray(array)))

        def linear(prefix, layer):
            put(layer.weight, params[prefix + ".weight"].T)
            put(layer.bias, params[prefix + ".bias"])

        with torch.no_grad():
            put(self.pos_embed, params["pos_embed"])
            linear("patch_embed", self.patch_embed)
            linear("router", self.router)
            linear("head", self.head)
            put(self.norm.weight, params["norm.weight"])
            put(self.norm.bias, params["norm.bias"])
            for l, block in enumerate(self.blocks):
                p = f"blocks.{l}."
                for name, norm in (("norm1", block.norm1), ("norm2", block.norm2)):
                    put(norm.weight, params[p + name + ".weight"])
                    put(norm.bias, params[p + name + ".bias"])
                linear(p + "attn.qkv", block.qkv)
                linear(p + "attn.proj", block.proj)
                if block.mlp is not None:
                    linear(p + "mlp.fc1", block.mlp.fc1)
                    linear(p + "mlp.fc2", block.mlp.fc2)
                    continue
                for e, expert in enumerate(block.experts):
                    for fc in ("fc1", "fc2"):
                        layer = getattr(expert, fc)
                        put(layer.weight, params[p + f"moe.{fc}.weight"][e].T)
                        put(layer.bias, params[p + f"moe.{fc}.bias"][e])

    def file_gradients(self) -> Dict[str, np.ndarray]:
        return self.file_tensors(gradients=True)
