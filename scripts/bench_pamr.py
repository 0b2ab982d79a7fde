"""Cost of PAMR (``model.post=pamr``) at the training-free protocol's working sizes: time and peak memory.

Each case runs in a fresh process (so the peak resident memory, ``VmHWM``, is that case's own): random
scores ``(K, H, W)`` and a random image at the working size of a benchmark under NACLIP's protocol (short
side 336; Cityscapes 560), 10 steps, dilations (8, 16), as NACLIP runs it. "extra" is the peak resident
memory minus the resident memory with the inputs allocated: what PAMR itself adds. "reference" is the
``(K, 16, H, W)`` float32 tensor the reference ``pamr.py`` builds each step (it allocates a second one for
the product).

    python scripts/bench_pamr.py                 # the table in BENCHMARKS.md, "Training-free CLIP"
    python scripts/bench_pamr.py --threads 2 --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

#: benchmark → (classes, working height, working width) at the protocol's short side.
CASES = {
    "voc20 (500×375 → 448×336)": (20, 336, 448),
    "pc59 (500×375 → 448×336)": (59, 336, 448),
    "ade150 (683×512 → 448×336)": (150, 336, 448),
    "coco_stuff (640×480 → 448×336)": (171, 336, 448),
    "cityscapes (2048×1024 → 1120×560)": (19, 560, 1120),
}


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def run_case(k: int, h: int, w: int, device: str, threads: int) -> dict[str, float]:
    import torch

    from mrovseg.model.training_free.pamr import pamr

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, h, w, generator=g).to(device)
    scores = torch.rand(k, h, w, generator=g).to(device)
    pamr(image[:, :8, :8], scores[:2, :8, :8].clone(), 1)  # warm-up (kernels, allocator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        # reset the peak (VmHWM) to the current resident memory (Linux ≥ 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _rss("VmRSS")
    start = time.perf_counter()
    pamr(image, scores, 10, (8, 16))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _rss("VmHWM")
    return {"seconds": time.perf_counter() - start, "extra_mb": max(0, peak - base) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # one case, in a child process
    args = parser.parse_args()
    if args.case is not None:
        k, h, w = CASES[args.case]
        print(json.dumps(run_case(k, h, w, args.device, args.threads)))
        return
    print(
        f"| benchmark (working size) | K | time, 10 steps ({args.device}, {args.threads} thr.) | extra memory | "
        "reference (K×16×H×W fp32) |"
    )
    print("|---|---|---|---|---|")
    for name, (k, h, w) in CASES.items():
        cmd = [
            sys.executable,
            __file__,
            "--case",
            name,
            "--device",
            args.device,
            "--threads",
            str(args.threads),
        ]
        out = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
        )
        reference = k * 16 * h * w * 4 / 2**20
        print(f"| {name} | {k} | {out['seconds']:.2f} s | {out['extra_mb']:.0f} MB | {reference:.0f} MB |")


if __name__ == "__main__":
    main()
