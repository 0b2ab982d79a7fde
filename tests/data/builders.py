"""Tiny on-disk fixtures for the data tests: prepared layouts of every benchmark and helper images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mrovseg.data.benchmarks import BenchmarkSpec, get_benchmark

#: Distinct colours, one per class of the "derivable" fixtures (label = index of the pixel's colour).
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
    ],
    dtype=np.uint8,
)


def write_image(path: Path, image: np.ndarray) -> None:
    """Writes an RGB ``uint8`` image (JPEG at quality 95 or PNG, from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".jpg":
        Image.fromarray(image).save(path, quality=95)
    else:
        Image.fromarray(image).save(path)


def write_label(path: Path, label: np.ndarray) -> None:
    """Writes a label map: ``uint8`` PNG or ``uint16`` TIFF, from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        Image.fromarray(label.astype(np.uint16)).save(path, format="TIFF")
    else:
        Image.fromarray(label.astype(np.uint8)).save(path)


def random_label(spec: BenchmarkSpec, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A label with the benchmark's extreme values: 0, K-1 and the on-disk ignore value."""
    k = spec.num_classes
    label = rng.integers(0, k, size=shape).astype(np.int64)
    label[0, 0], label[0, 1], label[-1, -1] = 0, k - 1, spec.ignore_value
    return label


def sample_paths(root: Path, spec: BenchmarkSpec, split: str, key: str) -> tuple[Path, Path]:
    """The image and label path of sample ``key`` of a split in the prepared layout."""
    lay = spec.layout(split)
    return (
        root / lay.image_dir / f"{key}{spec.image_suffix}",
        root / lay.label_dir / f"{key}{spec.label_suffix}",
    )


def make_layout(
    root: Path,
    benchmark: str,
    split: str = "val",
    n: int = 2,
    shape: tuple[int, int] = (12, 16),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Writes ``n`` samples of a benchmark in its prepared layout; returns ``key -> raw label``."""
    spec = get_benchmark(benchmark)
    rng = np.random.default_rng(seed)
    labels = {}
    for i in range(n):
        key = f"city{i % 2}/city{i % 2}_{i:06d}" if spec.recursive else f"img_{i:06d}"
        image_path, label_path = sample_paths(root, spec, split, key)
        write_image(image_path, rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8))
        labels[key] = random_label(spec, shape, rng)
        write_label(label_path, labels[key])
    return labels


def stripes(shape: tuple[int, int], widths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """An image of vertical colour stripes and its label (stripe ``i`` has class ``i``).

    The label is derivable from the pixels (nearest palette colour), so spatial transforms that
    misalign image and label are detectable; unequal widths make a flip detectable too.
    """
    h, w = shape
    bounds = np.cumsum([0, *widths])
    assert bounds[-1] == w
    label = np.zeros((h, w), dtype=np.int64)
    for i in range(len(widths)):
        label[:, bounds[i] : bounds[i + 1]] = i
    return PALETTE[label], label


def classify_pixels(image: np.ndarray) -> np.ndarray:
    """Nearest-palette-colour class of each pixel of an ``(H, W, 3)`` image."""
    d = ((image[:, :, None, :].astype(np.int32) - PALETTE[None, None].astype(np.int32)) ** 2).sum(-1)
    return d.argmin(-1)
