#!/usr/bin/env python
"""GFLOPs per image and images/s of a trained checkpoint on the toy test scenes (eval path).

Each test image (96×128) goes through ``module.predict_scores`` (the sliding windows of evaluation)
and ``upsample_argmax``, as ``mrovseg.eval`` runs it. FLOPs: ``torch.utils.flop_counter.FlopCounterMode``
over one image (2 FLOPs per multiply-add; matmuls, convolutions, attention; element-wise work and
``cdist`` are not counted). Throughput: images per second over ``--images`` images, batch 1, after one
warm-up image, in the current thread setting.

    OMP_NUM_THREADS=1 python scripts/mgca_cost.py --ckpt <run>/checkpoints/last.ckpt [--no-units]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mrovseg.data.toy_datamodule import ToyDataModule
from mrovseg.model.inference import upsample_argmax
from mrovseg.training.checkpoint import load_module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--no-units", action="store_true", help="plain per-pixel prediction")
    args = p.parse_args()
    module = load_module(args.ckpt)
    if args.no_units and hasattr(module.model, "units"):
        module.model.units["enabled"] = False
    dm = ToyDataModule()
    ds = dm.eval_dataset("test")
    text = module.text_embeddings(dm.eval_benchmarks[0].class_names)

    def run(i: int) -> torch.Tensor:
        sample = ds[i]
        return upsample_argmax(module.predict_scores(sample["image"], text), tuple(sample["label"].shape))

    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            run(0)
        gflops = counter.get_total_flops() / 1e9
        run(1)
        start = time.perf_counter()
        for i in range(args.images):
            run(i)
        ips = args.images / (time.perf_counter() - start)
    units = getattr(module.model, "units", {}).get("enabled")
    print(
        f"{args.ckpt}: units={units} GFLOPs/image {gflops:.3f}  images/s {ips:.1f}  "
        f"(threads {torch.get_num_threads()}, torch {torch.__version__})"
    )


if __name__ == "__main__":
    main()
