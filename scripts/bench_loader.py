#!/usr/bin/env python
"""Measures the training data pipeline: images/s of one loader worker at the 640² train crop.

Writes synthetic COCO-sized samples (640×480 JPEG images, 171-class PNG labels with ignore) in the
COCO-Stuff layout under a temporary folder, then times ``SemanticSegDataset(..., TrainTransform(640))``
sample by sample in this process (= one DataLoader worker), with a breakdown per stage; with
``--loader-workers N`` it also times a DataLoader with N workers and batch size ``--batch-size``.

Usage:
    python scripts/bench_loader.py                      # 48 files, 300 samples, one worker
    python scripts/bench_loader.py --loader-workers 2   # also a 2-worker DataLoader
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mrovseg.data.datasets import SemanticSegDataset
from mrovseg.data.image_io import load_image, load_label
from mrovseg.data.transforms import TrainTransform


def make_samples(root: Path, n: int, height: int, width: int, seed: int = 0) -> None:
    """Writes ``n`` photo-like JPEGs and blob-shaped labels in the COCO-Stuff train layout."""
    rng = np.random.default_rng(seed)
    image_dir = root / "coco" / "train2017"
    label_dir = root / "coco" / "stuffthingmaps_detectron2" / "train2017"
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for i in range(n):
        # smooth colour fields + fine noise compress like photographs (random noise would not)
        coarse = rng.integers(0, 256, (height // 40, width // 40, 3), dtype=np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(image_dir / f"{i:012d}.jpg", quality=90)
        classes = rng.integers(0, 171, (height // 60, width // 60), dtype=np.uint8)
        label = cv2.resize(classes, (width, height), interpolation=cv2.INTER_NEAREST)
        label[rng.random((height, width)) < 0.02] = 255
        Image.fromarray(label).save(label_dir / f"{i:012d}.png")


def time_stages(ds: SemanticSegDataset, iters: int) -> dict[str, float]:
    """Mean milliseconds per sample of decoding, augmentation and the full ``__getitem__``."""
    totals = {"decode image": 0.0, "decode label": 0.0, "augment": 0.0, "__getitem__ (all)": 0.0}
    n = len(ds)
    for i in range(iters):
        image_path, label_path, _ = ds.samples[i % n]
        t0 = time.perf_counter()
        image = load_image(image_path, exif_transpose=False)
        t1 = time.perf_counter()
        label = load_label(label_path).astype(np.int32)
        t2 = time.perf_counter()
        assert ds.transform is not None
        ds.transform(image, label)
        t3 = time.perf_counter()
        ds[i % n]
        t4 = time.perf_counter()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[key] += dt
    return {k: 1000 * v / iters for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-files", type=int, default=48, help="synthetic samples written (default 48)")
    parser.add_argument("--iters", type=int, default=300, help="samples timed in this process (default 300)")
    parser.add_argument("--crop", type=int, default=640, help="train crop (default 640)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(480, 640), help="image height width (default 480 640)"
    )
    parser.add_argument("--loader-workers", type=int, default=0, help="also time a DataLoader with N workers")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # one worker = one core; DataLoader workers do the same
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_samples(root, args.num_files, *args.size)
        ds = SemanticSegDataset(root, "coco_stuff", "train", TrainTransform(crop_size=args.crop))
        time_stages(ds, 10)  # warm-up
        stages = time_stages(ds, args.iters)
        per_sample = stages["__getitem__ (all)"]
        print(f"{args.num_files} synthetic {args.size[1]}x{args.size[0]} JPEG/PNG samples, crop {args.crop}²")
        for name, ms in stages.items():
            print(f"  {name:<18} {ms:6.2f} ms")
        print(f"one worker: {1000 / per_sample:.1f} images/s")
        if args.loader_workers > 0:
            loader = DataLoader(
                ds,
                batch_size=args.batch_size,
                shuffle=True,
                num_workers=args.loader_workers,
                persistent_workers=True,
            )
            for _ in loader:  # warm-up epoch: starts the workers
                pass
            t0, count = time.perf_counter(), 0
            for _ in range(max(1, args.iters // len(ds))):
                for batch in loader:
                    count += batch["image"].shape[0]
            rate = count / (time.perf_counter() - t0)
            print(f"DataLoader, {args.loader_workers} workers, batch {args.batch_size}: {rate:.1f} images/s")


if __name__ == "__main__":
    main()
