"""CLIP passes, GFLOPs and images/s per toy test image: OVSeg beside MROVSeg, in one run (issue 13).

    python scripts/ovseg_efficiency.py --ovseg-ckpt outputs/ovseg/checkpoints/last.ckpt \
        [--mrovseg-ckpt outputs/toy/checkpoints/last.ckpt] [--images 32] [--json out.json]

Without ``--mrovseg-ckpt`` MROVSeg is the default experiment's model with untrained weights (its
FLOPs and speed do not depend on the weights). OVSeg's do, through the number of non-empty
proposals: give its trained checkpoint; without one, an untrained ``experiment=ovseg_toy`` model is
used, whose random masks are nearly all non-empty (close to the upper bound of one pass per query). Images: the first ``--images`` scenes of the toy test split,
labelled with the training crop as sliding window, one window per call, one thread by default.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--ovseg-ckpt", type=Path, default=None, help="trained OVSeg (default: untrained, an upper bound)"
    )
    p.add_argument("--mrovseg-ckpt", type=Path, default=None)
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    from hydra import compose, initialize_config_dir

    from mrovseg.benchmarking.ovseg_efficiency import clip_passes_per_image, gflops_per_image
    from mrovseg.config import CONF_DIR
    from mrovseg.data.toy_datamodule import ToyDataModule
    from mrovseg.training.checkpoint import build_config_of, build_module, load_module

    torch.set_num_threads(args.threads)

    def untrained(experiment: str):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={experiment}"])
        return build_module(build_config_of(cfg)).eval()

    modules = {"OVSeg": load_module(args.ovseg_ckpt) if args.ovseg_ckpt else untrained("ovseg_toy")}
    modules["MROVSeg"] = load_module(args.mrovseg_ckpt) if args.mrovseg_ckpt else untrained("toy")
    dm = ToyDataModule()
    bench = dm.eval_benchmarks[0]
    data = dm.eval_dataset("test")
    images = [data[i]["image"] for i in range(args.images)]
    results = {}
    for name, module in modules.items():
        module.eval()
        model, window = module.model, module.hparams.window
        text = module.text_embeddings(bench.class_names)
        passes = [clip_passes_per_image(model, im, text, window) for im in images]
        flops = gflops_per_image(model, images[0], text, window)
        start = time.perf_counter()
        with torch.no_grad():
            for im in images:
                module.predict_scores(im, text)
        seconds = time.perf_counter() - start
        results[name] = {
            "windows_per_image": statistics.mean(p["windows"] for p in passes),
            "clip_passes_per_image": statistics.mean(p["clip_passes"] for p in passes),
            "region_passes_per_image": statistics.mean(p["region_passes"] for p in passes),
            "gflops_first_image": flops,
            "images_per_s": len(images) / seconds,
        }
    print(
        f"{len(images)} toy test images ({tuple(images[0].shape[1:])}), torch {torch.__version__}, "
        f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}"
    )
    print("| model | windows/image | CLIP passes/image | of which region crops | GFLOPs/image | images/s |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['windows_per_image']:.1f} | {r['clip_passes_per_image']:.1f} | "
            f"{r['region_passes_per_image']:.1f} | {r['gflops_first_image']:.3f} | {r['images_per_s']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
