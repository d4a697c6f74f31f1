"""Cross-check of the C++ model against the independent PyTorch one.

For each case, runs `mone-check` to write one training step of the C++ model,
loads its parameters and batch into tests/torch/mone_torch.py, repeats the
step in float32 and requires:
  - the file to follow docs/check-file.md (check_file.layout_problems);
  - the same capacities and tokens per expert;
  - EPR on the file's router probabilities to give the file's routing (the tie
    rule, exactly), and the torch model's own routing to be the same;
  - router probabilities, logits, loss and every parameter gradient within a
    relative error ||torch - c++|| / ||torch|| <= 1e-4 per tensor.

Mobile V-MoE cases (tests/torch/vmoe_torch.py) require the same of the
router probabilities, logits, loss (with the super-class loss) and every
gradient, and the same top-k experts of every image.

Run: /usr/bin/python3 tests/torch/crosscheck.py build/trainer/mone-check
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import check_file
import mone_torch as mt
import vmoe_torch as vt

TOLERANCE = 1e-4

# (name, mone-check arguments). Non-zero alpha so the router gets gradient;
# one case takes the random router (torch then takes the file's routing and
# checks that it is not EPR's), one the exact (erf) GELU of --gelu erf; the
# last case has an odd shape: non-square grid, 3 channels, 3 experts.
CASES = [
    ("tiny e_c=1.0", ["--preset", "tiny", "--batch", "8", "--capacity", "1.0", "--alpha", "0.5"]),
    ("tiny e_c=0.5", ["--preset", "tiny", "--batch", "8", "--capacity", "0.5", "--alpha", "0.5"]),
    ("tiny e_c=0.3", ["--preset", "tiny", "--batch", "8", "--capacity", "0.3", "--alpha", "0.5", "--seed", "7"]),
    ("random e_c=0.5", ["--preset", "tiny", "--batch", "8", "--capacity", "0.5", "--alpha", "0.5", "--seed", "17",
                        "--router", "random"]),
    ("tiny erf e_c=0.5", ["--preset", "tiny", "--batch", "8", "--capacity", "0.5", "--alpha", "0.5", "--seed", "11",
                          "--gelu", "erf"]),
    # In-place distillation: a teacher pass at e_c 1, then e_c 0.5 learning from
    # it at temperature 2, with the label term too so that every term counts.
    ("distill e_c=0.5", ["--preset", "tiny", "--batch", "8", "--capacity", "0.5", "--alpha", "0.5", "--seed", "5",
                         "--distill", "--distill-temperature", "2", "--distill-weight", "0.7",
                         "--distill-label-weight", "0.4"]),
    ("odd E=3 e_c=0.4", ["--preset", "tiny", "--batch", "5", "--capacity", "0.4", "--alpha", "0.8", "--seed", "3",
                         "--set", "dim=32", "--set", "heads=2", "--set", "depth=2", "--set", "experts=3",
                         "--set", "image_height=20", "--set", "channels=3"]),
]

# Mobile V-MoE: top-1 and top-2 with the super-class loss, top-2 without,
# top-1 with the exact GELU, and an odd shape (3 MoE blocks of 4, 4 experts, 3 channels, non-square grid).
VMOE_CASES = [
    ("vmoe top-1 sc", ["--arch", "vmoe", "--batch", "8", "--set", "experts=3", "--superclass-groups", "3"]),
    ("vmoe top-2 sc", ["--arch", "vmoe", "--batch", "8", "--set", "experts=3", "--set", "top_k=2",
                       "--superclass-groups", "3", "--seed", "5"]),
    ("vmoe top-2", ["--arch", "vmoe", "--batch", "6", "--set", "experts=3", "--set", "top_k=2", "--seed", "9"]),
    ("vmoe erf", ["--arch", "vmoe", "--batch", "6", "--set", "experts=3", "--superclass-groups", "3", "--seed", "13",
                  "--gelu", "erf"]),
    ("vmoe odd", ["--arch", "vmoe", "--batch", "5", "--seed", "3", "--set", "dim=32", "--set", "heads=2",
                  "--set", "depth=4", "--set", "moe_blocks=3", "--set", "experts=4", "--set", "top_k=2",
                  "--set", "image_height=20", "--set", "channels=3", "--superclass-groups", "2",
                  "--router-loss-weight", "0.5"]),
]


@dataclass
class Comparison:
    case: str
    tensor: str
    relative_error: float


def relative_error(cpp: np.ndarray, reference: np.ndarray) -> float:
    cpp, reference = np.asarray(cpp, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if cpp.shape != reference.shape:
        return math.inf
    difference = np.linalg.norm(cpp - reference)
    scale = np.linalg.norm(reference)
    if scale == 0.0:
        return 0.0 if difference == 0.0 else math.inf
    return float(difference / scale)


def gelu_failures(data, logits_of) -> List[str]:
    """For an erf file: the file's logits must sit 10x closer to the torch model
    with the exact GELU than to the one with the tanh GELU. The two functions
    differ by 1e-5 or less at the pre-activations of a freshly initialised
    model, so the tolerance alone would not tell them apart."""
    if data.config.gelu != "erf":
        return []
    errors = {gelu: relative_error(data.logits, logits_of(replace(data.config, gelu=gelu)))
              for gelu in ("erf", "tanh")}
    if errors["erf"] * 10 <= errors["tanh"]:
        return []
    return [f"logits relative error {errors['erf']:.2e} with the exact GELU, {errors['tanh']:.2e} with tanh: "
            "the file does not show the exact GELU"]


def run_case(mone_check: str, name: str, arguments: List[str], directory: str) -> Tuple[List[Comparison], List[str]]:
    """Returns the tensor comparisons and the exact-match failures of one case."""
    path, failure = write_check_file(mone_check, name, arguments, directory)
    if failure:
        return [], [failure]
    failures = [f"layout: {problem}" for problem in check_file.layout_problems(path)]
    if failures:
        return [], failures

    data = check_file.load(path)
    model = mt.MoNEViT(data.config)
    model.load_file_parameters(data.params)
    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels).long()
    # The random router's draws are the C++ side's: torch takes its routing
    # from the file and checks everything that follows from it.
    random_router = data.config.router == "random"
    given_routing = torch.from_numpy(data.expert_of_token).long() if random_router else None
    teacher = model(images, 1.0) if data.teacher_logits is not None else None
    output = model(images, data.requested_capacity, given_routing)
    if teacher is None:
        loss = F.cross_entropy(output.logits, labels)
    else:
        loss = F.cross_entropy(teacher.logits, labels) + distillation_loss(data, output.logits, teacher.logits, labels)
    loss.backward()

    if not np.allclose(output.capacity, data.capacity, rtol=0, atol=1e-9):
        failures.append(f"capacity torch {np.round(output.capacity, 6)} c++ {np.round(data.capacity, 6)}")
    if output.tokens_per_expert != data.tokens_per_expert.tolist():
        failures.append(f"tokens per expert torch {output.tokens_per_expert} c++ {data.tokens_per_expert.tolist()}")
    else:
        file_counts = data.tokens_per_expert.tolist()
        epr_on_file_probs = mt.expert_preferred_routing(torch.from_numpy(data.router_probs), file_counts)
        mismatched = int((epr_on_file_probs.numpy() != data.expert_of_token).sum())
        if random_router and mismatched < data.expert_of_token.size // 4:
            failures.append(f"the random routing agrees with EPR on the router's probabilities at all but "
                            f"{mismatched} tokens: it does not look random")
        if not random_router and mismatched:
            failures.append(f"EPR on the file's probabilities differs from the file's routing at {mismatched} tokens")
    own_mismatched = int((output.expert_of_token.numpy() != data.expert_of_token).sum())
    if own_mismatched:
        failures.append(f"the torch model's routing differs from the file's at {own_mismatched} tokens")

    def mone_logits(config):
        other = mt.MoNEViT(config)
        other.load_file_parameters(data.params)
        with torch.no_grad():
            return other(images, data.requested_capacity, given_routing).logits.numpy()
    failures += gelu_failures(data, mone_logits)

    comparisons = compared_outputs(name, data, output, loss, model)
    if teacher is not None:
        comparisons.append(Comparison(name, "teacher logits",
                                      relative_error(data.teacher_logits, teacher.logits.detach().numpy())))
    return comparisons, failures


def distillation_loss(data, student_logits, teacher_logits, labels):
    """The student's loss of docs/method.md, "In-place distillation", written
    with torch's own KL divergence: weight * tau^2 KL(softmax(t / tau) ||
    softmax(z / tau)), batch mean, with the teacher detached, plus the
    label term."""
    tau = data.distill_temperature
    kl = F.kl_div(F.log_softmax(student_logits / tau, dim=1), F.softmax(teacher_logits.detach() / tau, dim=1),
                  reduction="batchmean")
    return data.distill_weight * tau * tau * kl + data.distill_label_weight * F.cross_entropy(student_logits, labels)


def write_check_file(mone_check: str, name: str, arguments: List[str], directory: str) -> Tuple[str, str]:
    """Runs mone-check into DIRECTORY/<name>.h5: the path, and a failure message or ''."""
    path = os.path.join(directory, name.replace(" ", "_").replace("=", "") + ".h5")
    completed = subprocess.run([mone_check, *arguments, "--out", path], capture_output=True, text=True)
    if completed.returncode != 0:
        return path, f"mone-check failed ({completed.returncode}): {completed.stderr.strip()}"
    return path, ""


def compared_outputs(name: str, data, output, loss, model) -> List[Comparison]:
    """Router probabilities, logits, loss and every gradient of the file against torch's."""
    comparisons = [
        Comparison(name, "router_probs", relative_error(data.router_probs, output.router_probs.detach().numpy())),
        Comparison(name, "logits", relative_error(data.logits, output.logits.detach().numpy())),
        Comparison(name, "loss", relative_error(data.loss, loss.item())),
    ]
    for tensor, gradient in model.file_gradients().items():
        comparisons.append(Comparison(name, "grad " + tensor, relative_error(data.grads[tensor], gradient)))
    return comparisons


def run_vmoe_case(mone_check: str, name: str, arguments: List[str],
                  directory: str) -> Tuple[List[Comparison], List[str]]:
    path, failure = write_check_file(mone_check, name, arguments, directory)
    if failure:
        return [], [failure]
    data = check_file.load_vmoe(path)
    model = vt.VmoeViT(data.config)
    model.load_file_parameters(data.params)
    labels = torch.from_numpy(data.labels).long()
    superclass = labels % data.superclass_groups if data.superclass_groups > 0 else None
    output = model(torch.from_numpy(data.images))
    loss = model.loss(output, labels, superclass, data.router_loss_weight)
    loss.backward()
    failures = []
    if not np.array_equal(output.experts.numpy(), data.expert_of_slot):
        failures.append(f"top-k experts torch {output.experts.tolist()} c++ {data.expert_of_slot.tolist()}")
    if len(np.unique(data.expert_of_slot)) < 2:
        failures.append("every image took the same experts: the case checks too little, pick another seed")

    def vmoe_logits(config):
        other = vt.VmoeViT(config)
        other.load_file_parameters(data.params)
        with torch.no_grad():
            return other(torch.from_numpy(data.images)).logits.numpy()
    failures += gelu_failures(data, vmoe_logits)
    return compared_outputs(name, data, output, loss, model), failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mone_check", help="path of the mone-check program")
    parser.add_argument("--keep", metavar="DIR", help="write the check files here and keep them")
    parser.add_argument("--worst", type=int, default=12, help="rows of the worst-tensor table")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or scratch
        os.makedirs(directory, exist_ok=True)
        comparisons, failures = [], []
        for name, arguments, run in [(n, a, run_case) for n, a in CASES] + [(n, a, run_vmoe_case) for n, a in VMOE_CASES]:
            case_comparisons, case_failures = run(args.mone_check, name, arguments, directory)
            comparisons += case_comparisons
            failures += [f"{name}: {failure}" for failure in case_failures]
            worst = max((c.relative_error for c in case_comparisons), default=math.nan)
            print(f"{name:18s} tensors {len(case_comparisons):3d}  worst relative error {worst:.2e}  "
                  f"{'ok' if not case_failures else 'EXACT-MATCH FAILURES ' + str(len(case_failures))}")

    over = [c for c in comparisons if not c.relative_error <= TOLERANCE]
    print(f"\nworst tensors (tolerance {TOLERANCE:.0e} on ||torch - c++|| / ||torch||):")
    print(f"  {'case':18s} {'tensor':36s} {'relative error':>14s}")
    for c in sorted(comparisons, key=lambda c: -c.relative_error)[: args.worst]:
        flag = "" if c.relative_error <= TOLERANCE else "  FAIL"
        print(f"  {c.case:18s} {c.tensor:36s} {c.relative_error:14.3e}{flag}")
    for failure in failures:
        print("FAIL " + failure)
    if over or failures:
        print(f"\ncrosscheck: FAILED ({len(over)} tensors over tolerance, {len(failures)} other failures)")
        return 1
    print(f"\ncrosscheck: passed ({len(comparisons)} tensors in {len(CASES) + len(VMOE_CASES)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
