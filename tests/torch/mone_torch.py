"""An independent PyTorch implementation of the MoNE Vision Transformer.

Written from docs/method.md, not from the C++ code, so that the two can check
each other. It keeps the natural PyTorch layout: tokens in their original order
[B, N, D], one index set per expert, nested projections as slices of the dense
weights (W[:d_j]), and autograd for every gradient. Module and parameter names
follow docs/check-file.md, so a check file's tensors map onto the state dict
one to one (linear weights transposed: the file stores [in, out]).
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LAYERNORM_EPS = 1e-6

# Capacity objective of the method page: w_j = DELTA^(j-1), entropy weight BETA.
CAPACITY_BETA = 10.0
CAPACITY_DELTA = 2.0


@dataclass
class Config:
    image_height: int = 28
    image_width: int = 28
    channels: int = 1
    patch: int = 4
    dim: int = 64
    depth: int = 6
    heads: int = 4
    experts: int = 4
    classes: int = 10
    mlp_ratio: int = 4
    gelu: str = "tanh"  # or "erf": the exact GELU (the check file's attribute gelu)
    router: str = "learned"  # or "random": the routing comes from outside (the check file's expert_of_token)

    @property
    def gelu_approximate(self) -> str:
        """F.gelu's name for this GELU."""
        return {"tanh": "tanh", "erf": "none"}[self.gelu]

    @property
    def tokens(self) -> int:
        return (self.image_height // self.patch) * (self.image_width // self.patch)

    @property
    def patch_dim(self) -> int:
        return self.patch * self.patch * self.channels

    def expert_widths(self) -> List[int]:
        """d_1..d_E, smallest first: d_j = D / 2^(E-j)."""
        return [self.dim // 2 ** (self.experts - j) for j in range(1, self.experts + 1)]


TINY = Config()


# ---------------------------------------------------------------- capacities

def capacity_distribution(effective_capacity: float, experts: int) -> List[float]:
    """c_1..c_E maximising sum w_j c_j - beta sum c_j log c_j with sum c_j = 1
    and sum c_j a_j = e_c. The maximiser is c_j ∝ exp((w_j - mu a_j) / beta);
    the mean of a under it falls as mu rises, so mu is found by bisection."""
    lowest = 2.0 ** (1 - experts)
    if not lowest < effective_capacity <= 1.0:
        raise ValueError(f"effective capacity {effective_capacity} outside ({lowest}, 1]")
    if effective_capacity == 1.0:
        # The limit mu -> -inf: everything at the full expert (a dense ViT).
        return [0.0] * (experts - 1) + [1.0]
    a = np.array([2.0 ** (j - experts) for j in range(1, experts + 1)])
    w = np.array([CAPACITY_DELTA ** (j - 1) for j in range(1, experts + 1)])

    def distribution(mu: float) -> np.ndarray:
        logits = (w - mu * a) / CAPACITY_BETA
        c = np.exp(logits - logits.max())
        return c / c.sum()

    mu_low, mu_high = -1.0e4, 1.0e4
    for _ in range(200):
        mu = 0.5 * (mu_low + mu_high)
        if distribution(mu) @ a > effective_capacity:
            mu_low = mu
        else:
            mu_high = mu
    return distribution(0.5 * (mu_low + mu_high)).tolist()


def tokens_per_expert(capacity: List[float], tokens: int) -> List[int]:
    """k_j = floor(c_j N) for j > 1; the smallest expert takes the rest."""
    larger = [int(math.floor(c * tokens)) for c in capacity[1:]]
    return [tokens - sum(larger)] + larger


def realised_capacity(counts: List[int]) -> float:
    experts = len(counts)
    return sum(k * 2.0 ** (j - experts) for j, k in enumerate(counts, start=1)) / sum(counts)


# ------------------------------------------------------------------- routing

@torch.no_grad()
def expert_preferred_routing(probs: torch.Tensor, counts: List[int]) -> torch.Tensor:
    """EPR per image. probs [B, N, E]; returns the 0-based expert of every token
    [B, N]. From the largest expert down, the counts[j] unassigned tokens with
    the highest probs[..., j] go to expert j; ties go to the lower token index.
    Assigned tokens are pushed behind the others by a second stable sort on
    the assignment mask, never by altering a probability."""
    batch, tokens, experts = probs.shape
    expert = torch.zeros(batch, tokens, dtype=torch.long, device=probs.device)
    assigned = torch.zeros(batch, tokens, dtype=torch.bool, device=probs.device)
    for j in range(experts - 1, 0, -1):
        if counts[j] == 0:
            continue
        by_probability = torch.sort(probs[..., j], dim=1, descending=True, stable=True).indices
        mask_in_that_order = assigned.gather(1, by_probability).to(torch.uint8)
        free_first = torch.sort(mask_in_that_order, dim=1, stable=True).indices
        chosen = by_probability.gather(1, free_first)[:, : counts[j]]
        expert.scatter_(1, chosen, j)
        assigned.scatter_(1, chosen, True)
    return expert


# -------------------------------------------------------------------- layers

class NestedTokens:
    """Which rows of the flattened [B*N] token batch each expert owns. The
    activations stay in token order; a nested projection gathers each expert's
    rows (`split`), projects them at the expert's width, and puts the results
    back in token order (`merge`), one gather each way."""

    def __init__(self, expert_of_token: torch.Tensor, widths: List[int]):
        flat = expert_of_token.reshape(-1)
        rows = [(flat == j).nonzero().squeeze(1) for j in range(len(widths))]
        self.widths = [width for width, r in zip(widths, rows) if r.numel() > 0]
        self.counts = [r.numel() for r in rows if r.numel() > 0]
        self.order = torch.cat(rows)
        self.restore = torch.argsort(self.order)

    def split(self, x: torch.Tensor) -> List[torch.Tensor]:
        return list(torch.split(x.index_select(0, self.order), self.counts))

    def merge(self, parts: List[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts).index_select(0, self.restore)


def nested_in(x: torch.Tensor, layer: nn.Linear, experts: NestedTokens) -> torch.Tensor:
    """A token of width d reads only its first d features: x[:d] @ W[:d] + b."""
    return experts.merge([F.linear(part[:, :width], layer.weight[:, :width], layer.bias)
                          for part, width in zip(experts.split(x), experts.widths)])


def nested_out(x: torch.Tensor, layer: nn.Linear, experts: NestedTokens) -> torch.Tensor:
    """A token of width d writes only its first d channels; the rest stay zero."""
    return experts.merge([F.pad(F.linear(part, layer.weight[:width], layer.bias[:width]),
                                (0, layer.out_features - width))
                          for part, width in zip(experts.split(x), experts.widths)])


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x_normed: torch.Tensor, experts: NestedTokens, batch: int) -> torch.Tensor:
        dim = self.proj.in_features
        qkv = nested_in(x_normed, self.qkv, experts).reshape(batch, -1, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous()  # each [B, heads, N, head_dim]
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(batch * q.shape[2], dim)
        return nested_out(mixed, self.proj, experts)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, gelu_approximate: str = "tanh"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.gelu_approximate = gelu_approximate

    def forward(self, x_normed: torch.Tensor, experts: NestedTokens) -> torch.Tensor:
        hidden = F.gelu(nested_in(x_normed, self.fc1, experts), approximate=self.gelu_approximate)
        return nested_out(hidden, self.fc2, experts)


class Block(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim, eps=LAYERNORM_EPS)
        self.attn = Attention(config.dim, config.heads)
        self.norm2 = nn.LayerNorm(config.dim, eps=LAYERNORM_EPS)
        self.mlp = Mlp(config.dim, config.mlp_ratio * config.dim, config.gelu_approximate)
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, x, experts: NestedTokens, chosen_probability, batch: int):
        """x [B*N, D]; chosen_probability [B*N, 1] is r of the token's expert."""
        z = x + self.attn(self.norm1(x), experts, batch)
        return z + (self.alpha * chosen_probability + 1) * self.mlp(self.norm2(z), experts)


@dataclass
class Output:
    logits: torch.Tensor             # [B, classes]
    router_probs: torch.Tensor       # [B, N, E]
    expert_of_token: torch.Tensor    # [B, N], 0-based
    capacity: List[float]            # c_1..c_E
    tokens_per_expert: List[int]     # k_1..k_E
    embedded: torch.Tensor           # [B, N, D] patch + position, the router's input
    encoded: torch.Tensor            # [B, N, D] residual stream after the last block


class MoNEViT(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.patch_embed = nn.Linear(config.patch_dim, config.dim)
        self.pos_embed = nn.Parameter(torch.zeros(config.tokens, config.dim))
        self.router = nn.Linear(config.dim, config.experts)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, eps=LAYERNORM_EPS)
        self.head = nn.Linear(config.dim, config.classes)
        self.reset_parameters()

    def reset_parameters(self, generator: Optional[torch.Generator] = None):
        """The method's initialisation: weights truncated normal std 0.02 (the
        router's plain normal), position embedding truncated normal, biases and
        alphas 0, LayerNorm gains 1."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
                elif isinstance(module, nn.Linear):
                    module.weight.copy_(truncated_normal(module.weight.shape, 0.02, generator))
                    module.bias.zero_()
                elif isinstance(module, Block):
                    module.alpha.zero_()
            self.router.weight.normal_(0.0, 0.02, generator=generator)
            self.pos_embed.copy_(truncated_normal(self.pos_embed.shape, 0.02, generator))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, H, W, C] -> tokens [B, N, D], patches row-major over the
        grid, each flattened row-major over (P, P, C)."""
        c, p = self.config, self.config.patch
        grid = images.reshape(images.shape[0], c.image_height // p, p, c.image_width // p, p, c.channels)
        patches = grid.permute(0, 1, 3, 2, 4, 5).reshape(images.shape[0], c.tokens, c.patch_dim)
        return self.patch_embed(patches) + self.pos_embed

    def forward(self, images: torch.Tensor, effective_capacity: float,
                expert_of_token: Optional[torch.Tensor] = None) -> Output:
        """expert_of_token [B, N] replaces EPR's choice (the random router's
        draws, which the C++ side makes); r is still the router's probability
        of the token's expert."""
        batch, config = images.shape[0], self.config
        embedded = self.embed(images)
        router_probs = torch.softmax(self.router(embedded), dim=-1)
        capacity = capacity_distribution(effective_capacity, config.experts)
        counts = tokens_per_expert(capacity, config.tokens)
        if expert_of_token is None:
            expert_of_token = expert_preferred_routing(router_probs, counts)
        experts = NestedTokens(expert_of_token, config.expert_widths())
        chosen_probability = router_probs.gather(2, expert_of_token.unsqueeze(2)).reshape(-1, 1)

        x = embedded.reshape(batch * config.tokens, config.dim)
        for block in self.blocks:
            x = block(x, experts, chosen_probability, batch)
        encoded = x.reshape(batch, config.tokens, config.dim)
        logits = self.head(self.norm(encoded).mean(dim=1))
        return Output(logits, router_probs, expert_of_token, capacity, counts, embedded, encoded)

    # ---- the check file's tensors: [in, out] linear weights, numpy arrays
    def linear_weight_names(self) -> set:
        return {f"{name}.weight" for name, module in self.named_modules() if isinstance(module, nn.Linear)}

    def to_file_layout(self, name: str, tensor: torch.Tensor) -> np.ndarray:
        transposed = tensor.t() if name in self.linear_weight_names() else tensor
        return transposed.detach().cpu().numpy()

    def load_file_parameters(self, params: Dict[str, np.ndarray]):
        own = dict(self.named_parameters())
        if set(own) != set(params):
            raise KeyError(f"parameter names differ: only in the model {sorted(set(own) - set(params))}, "
                           f"only in the file {sorted(set(params) - set(own))}")
        linear_weights = self.linear_weight_names()
        with torch.no_grad():
            for name, parameter in own.items():
                value = torch.from_numpy(np.asarray(params[name]))
                parameter.copy_(value.t() if name in linear_weights else value)

    def file_gradients(self) -> Dict[str, np.ndarray]:
        """A parameter no gradient reached has gradient zero."""
        return {name: self.to_file_layout(name, p.grad if p.grad is not None else torch.zeros_like(p))
                for name, p in self.named_parameters()}


def truncated_normal(shape, std: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Normal(0, std) cut at two standard deviations, by redrawing."""
    values = torch.randn(shape, generator=generator)
    outside = values.abs() > 2
    while bool(outside.any()):
        values[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = values.abs() > 2
    return values * std

