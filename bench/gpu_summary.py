"""The table of bench/gpu.sh: one row per implementation and e_c, from the
JSON lines of mone-bench-gpu-step --json and bench/torch_gpu_step.py.

  python3 bench/gpu_summary.py results.jsonl [machine.txt]

Columns: ms/step, img/s, TFLOP/s and MFU (training FLOPs per image as our
benchmark counts them at the realised routing, the method page's count; the
PyTorch rows use ours for the same preset and e_c, since it is the same
model), the speed-up over the same implementation at e_c = 1, and ours over
PyTorch eager at the same e_c. The peak for MFU is the dense bf16 tensor-core
peak of the GPU named in machine.txt (H100/H200 SXM: 989 TFLOP/s); unknown
GPUs get no MFU column values.
"""

import json
import sys

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}


def peak_of(machine_path):
    try:
        text = open(machine_path).read()
    except (OSError, TypeError):
        return None, "unknown GPU"
    for name, peak in PEAK_TFLOPS.items():
        if name in text:
            return peak, f"{name} (bf16 dense peak {peak:.0f} TFLOP/s)"
    return None, "unknown GPU"


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
    peak, peak_text = peak_of(sys.argv[2] if len(sys.argv) > 2 else None)
    flops_per_image = {}  # (preset, e_c) -> FLOPs, from our rows
    for r in rows:
        if "tflop_per_s" in r:
            flops_per_image[(r["preset"], r["capacity"])] = r["tflop_per_s"] * 1e12 / r["img_per_s"]
    at_full = {(r["impl"], r["preset"]): r["img_per_s"] for r in rows if r["capacity"] == 1}
    eager = {(r["preset"], r["capacity"]): r["img_per_s"] for r in rows if r["impl"] == "pytorch"}

    print(f"MFU against {peak_text}.\n")
    for preset in dict.fromkeys(r["preset"] for r in rows):
        print(f"### {preset}, batch {next(r['batch'] for r in rows if r['preset'] == preset)}\n")
        print("| implementation | e_c | ms/step | img/s | TFLOP/s | MFU | vs own e_c=1 | vs PyTorch eager |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            if r["preset"] != preset:
                continue
            flops = flops_per_image.get((preset, r["capacity"]))
            tflops = flops * r["img_per_s"] / 1e12 if flops else None
            mfu = f"{100 * tflops / peak:.1f}%" if tflops and peak else ""
            full = at_full.get((r["impl"], preset))
            own = f"{r['img_per_s'] / full:.2f}x" if full else ""
            torch_eager = eager.get((preset, r["capacity"]))
            vs_torch = f"{r['img_per_s'] / torch_eager:.2f}x" if torch_eager and r["impl"] != "pytorch" else ""
            tflops_text = f"{tflops:.1f}" if tflops else ""
            print(f"| {r['impl']} | {r['capacity']:g} | {r['ms_per_step']:.2f} | {r['img_per_s']:.0f} | "
                  f"{tflops_text} | {mfu} | {own} | {vs_torch} |")
        print()


if __name__ == "__main__":
    main()
