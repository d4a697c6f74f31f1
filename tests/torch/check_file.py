"""Reading a check file (docs/check-file.md) and checking it against its
contract: every entry present with the documented type and shape, and the
entries consistent with one another (routing counts, probabilities, capacity).

Run on its own: /usr/bin/python3 tests/torch/check_file.py FILE.h5 [...]
"""

import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

import h5py
import numpy as np

import mone_torch as mt

CONFIG_FIELDS = ["image_height", "image_width", "channels", "patch", "dim", "depth", "heads", "experts",
                 "classes", "mlp_ratio"]


@dataclass
class CheckFile:
    config: mt.Config
    seed: int
    requested_capacity: float
    realised_capacity: float
    params: Dict[str, np.ndarray]
    grads: Dict[str, np.ndarray]
    images: np.ndarray            # [B, H, W, C] float32
    labels: np.ndarray            # [B] int32
    capacity: np.ndarray          # [E] float64
    tokens_per_expert: np.ndarray  # [E] int64
    expert_of_token: np.ndarray   # [B, N] int32
    router_probs: np.ndarray      # [B, N, E] float32
    logits: np.ndarray            # [B, classes] float32
    loss: float
    # In-place distillation (absent: none): the teacher pass's logits at e_c 1
    # and the student's loss weights; the grads and loss are both passes' sums.
    teacher_logits: Optional[np.ndarray] = None
    distill_temperature: float = 1.0
    distill_weight: float = 1.0
    distill_label_weight: float = 0.0

    @property
    def batch(self) -> int:
        return self.images.shape[0]


def _text(value) -> str:
    """h5py gives variable-length strings as str and fixed-length ones as bytes."""
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def _gelu(attrs) -> str:
    """The GELU the file's model used; files written before the attribute existed used tanh."""
    return _text(attrs.get("gelu", b"tanh"))


def _router(attrs) -> str:
    """MoNE's router; files written before the attribute existed used the learned one."""
    return _text(attrs.get("router", b"learned"))


def _group(f, name: str) -> Dict[str, np.ndarray]:
    return {key: f[name][key][()] for key in f[name]}


def load(path: str) -> CheckFile:
    with h5py.File(path, "r") as f:
        attrs = f.attrs
        config = mt.Config(**{field: int(attrs[field]) for field in CONFIG_FIELDS}, gelu=_gelu(attrs),
                           router=_router(attrs))

        return CheckFile(
            config=config, seed=int(attrs["seed"]),
            requested_capacity=float(attrs["requested_capacity"]),
            realised_capacity=float(attrs["realised_capacity"]),
            params=_group(f, "params"), grads=_group(f, "grads"),
            images=f["batch/images"][()], labels=f["batch/labels"][()],
            capacity=f["routing/capacity"][()], tokens_per_expert=f["routing/tokens_per_expert"][()],
            expert_of_token=f["routing/expert_of_token"][()], router_probs=f["routing/router_probs"][()],
            logits=f["output/logits"][()], loss=float(f["output/loss"][0]),
            **_distillation(f))


def _distillation(f) -> dict:
    if "distill" not in f:
        return {}
    return dict(teacher_logits=f["distill/teacher_logits"][()],
                **{name: float(f.attrs[name]) for name in
                   ("distill_temperature", "distill_weight", "distill_label_weight")})


@dataclass
class VmoeCheckFile:
    """A Mobile V-MoE check file (docs/check-file.md, "Mobile V-MoE")."""
    config: "vt.VmoeConfig"
    superclass_groups: int
    router_loss_weight: float
    params: Dict[str, np.ndarray]
    grads: Dict[str, np.ndarray]
    images: np.ndarray            # [B, H, W, C] float32
    labels: np.ndarray            # [B] int32
    expert_of_slot: np.ndarray    # [B, k] int32, best first
    router_probs: np.ndarray      # [B, E] float32
    logits: np.ndarray
    loss: float


def is_vmoe(path: str) -> bool:
    with h5py.File(path, "r") as f:
        return _text(f.attrs.get("arch", b"mone")) == "vmoe"


def load_vmoe(path: str) -> VmoeCheckFile:
    import vmoe_torch as vt
    fields = CONFIG_FIELDS + ["moe_blocks", "top_k"]
    with h5py.File(path, "r") as f:
        attrs = f.attrs
        config = vt.VmoeConfig(**{field: int(attrs[field]) for field in fields}, gelu=_gelu(attrs))

        return VmoeCheckFile(
            config=config, superclass_groups=int(attrs["superclass_groups"]),
            router_loss_weight=float(attrs["router_loss_weight"]),
            params=_group(f, "params"), grads=_group(f, "grads"),
            images=f["batch/images"][()], labels=f["batch/labels"][()],
            expert_of_slot=f["routing/expert_of_slot"][()], router_probs=f["routing/router_probs"][()],
            logits=f["output/logits"][()], loss=float(f["output/loss"][0]))


def expected_parameter_shapes(c: mt.Config) -> Dict[str, tuple]:
    """The parameter table of docs/check-file.md."""
    d, hidden = c.dim, c.mlp_ratio * c.dim
    shapes = {
        "patch_embed.weight": (c.patch_dim, d), "patch_embed.bias": (d,),
        "pos_embed": (c.tokens, d),
        "router.weight": (d, c.experts), "router.bias": (c.experts,),
        "norm.weight": (d,), "norm.bias": (d,),
        "head.weight": (d, c.classes), "head.bias": (c.classes,),
    }
    for l in range(c.depth):
        shapes.update({
            f"blocks.{l}.norm1.weight": (d,), f"blocks.{l}.norm1.bias": (d,),
            f"blocks.{l}.attn.qkv.weight": (d, 3 * d), f"blocks.{l}.attn.qkv.bias": (3 * d,),
            f"blocks.{l}.attn.proj.weight": (d, d), f"blocks.{l}.attn.proj.bias": (d,),
            f"blocks.{l}.norm2.weight": (d,), f"blocks.{l}.norm2.bias": (d,),
            f"blocks.{l}.mlp.fc1.weight": (d, hidden), f"blocks.{l}.mlp.fc1.bias": (hidden,),
            f"blocks.{l}.mlp.fc2.weight": (hidden, d), f"blocks.{l}.mlp.fc2.bias": (d,),
            f"blocks.{l}.alpha": (1,),
        })
    return shapes


def layout_problems(path: str) -> List[str]:
    """Everything in the file that breaks docs/check-file.md; empty if none."""
    problems = []

    def expect(condition, message):
        if not condition:
            problems.append(message)

    with h5py.File(path, "r") as f:
        attrs = f.attrs
        expect(_text(attrs.get("format", b"")) == "mone-check", f"attribute format is {attrs.get('format')!r}")
        for name in ["version", "seed", "batch"] + CONFIG_FIELDS:
            expect(name in attrs and np.asarray(attrs[name]).dtype == np.int64, f"attribute {name} missing or not int64")
        for name in ["requested_capacity", "realised_capacity"]:
            expect(name in attrs and np.asarray(attrs[name]).dtype == np.float64, f"attribute {name} missing or not float64")
        expect(_gelu(attrs) in ("tanh", "erf"), f"attribute gelu is {attrs.get('gelu')!r}, not tanh or erf")
        expect(_router(attrs) in ("learned", "random"), f"attribute router is {attrs.get('router')!r}")
        if any(name not in attrs for name in ["batch"] + CONFIG_FIELDS):
            return problems  # the shapes below cannot be known
        expect(int(attrs.get("version", 0)) == 1, f"version {attrs.get('version')}")
        config = mt.Config(**{field: int(attrs[field]) for field in CONFIG_FIELDS})
        b, n, e = int(attrs["batch"]), config.tokens, config.experts

        def dataset(path, dtype, shape):
            """The values, or None when missing or misshapen (no further checks)."""
            if path not in f:
                problems.append(f"{path} missing")
                return None
            data = f[path]
            expect(data.dtype == np.dtype(dtype), f"{path} is {data.dtype}, want {np.dtype(dtype)}")
            if data.shape != tuple(shape):
                problems.append(f"{path} has shape {data.shape}, want {tuple(shape)}")
                return None
            return data[()]

        shapes = expected_parameter_shapes(config)
        for group in ("params", "grads"):
            stored = set(f[group]) if group in f else set()
            expect(stored == set(shapes), f"/{group} names differ: missing {sorted(set(shapes) - stored)}, "
                                          f"unexpected {sorted(stored - set(shapes))}")
            for name in stored & set(shapes):
                values = dataset(f"{group}/{name}", np.float32, shapes[name])
                expect(values is None or bool(np.isfinite(values).all()), f"/{group}/{name} not finite")

        dataset("batch/images", np.float32, (b, config.image_height, config.image_width, config.channels))
        labels = dataset("batch/labels", np.int32, (b,))
        capacity = dataset("routing/capacity", np.float64, (e,))
        counts = dataset("routing/tokens_per_expert", np.int64, (e,))
        experts = dataset("routing/expert_of_token", np.int32, (b, n))
        probs = dataset("routing/router_probs", np.float32, (b, n, e))
        logits = dataset("output/logits", np.float32, (b, config.classes))
        loss = dataset("output/loss", np.float32, (1,))
        if any(value is None for value in (labels, capacity, counts, experts, probs, logits, loss)):
            return problems

        expect(((labels >= 0) & (labels < config.classes)).all(), "a label outside [0, classes)")
        expect(abs(capacity.sum() - 1) < 1e-9, f"capacities sum to {capacity.sum()}")
        expect(abs(capacity @ [2.0 ** (j - e) for j in range(1, e + 1)] - attrs["requested_capacity"]) < 1e-6,
               "the capacities do not realise requested_capacity")
        expect(counts.sum() == n, f"tokens_per_expert sums to {counts.sum()}, not N = {n}")
        expect(abs(mt.realised_capacity(counts.tolist()) - attrs["realised_capacity"]) < 1e-12,
               "realised_capacity does not follow from tokens_per_expert")
        for image in range(b):
            per_expert = np.bincount(experts[image], minlength=e)
            expect(per_expert.tolist() == counts.tolist(), f"image {image} has {per_expert.tolist()} tokens per expert")
        expect(np.abs(probs.sum(axis=2) - 1).max() < 1e-5, "router_probs rows do not sum to 1")
        expect(np.isfinite(logits).all() and np.isfinite(loss).all(), "logits or loss not finite")
        if "distill" in f:
            teacher = dataset("distill/teacher_logits", np.float32, (b, config.classes))
            expect(teacher is None or bool(np.isfinite(teacher).all()), "/distill/teacher_logits not finite")
            for name in ("distill_temperature", "distill_weight", "distill_label_weight"):
                expect(name in attrs and np.asarray(attrs[name]).dtype == np.float64,
                       f"attribute {name} missing or not float64")
    return problems


if __name__ == "__main__":
    failed = False
    for file in sys.argv[1:]:
        for problem in layout_problems(file):
            print(f"{file}: {problem}")
            failed = True
    sys.exit(1 if failed else 0)
