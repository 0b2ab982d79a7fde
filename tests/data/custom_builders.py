"""Tiny custom datasets (``data=custom`` layout) written on the fly for the tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A random ``uint8 (h, w, 3)`` image."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_label(path: Path, label: np.ndarray) -> None:
    """Writes a label map: PNG (uint8 or uint16, from the array's dtype) or TIFF, from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, label)
    else:
        Image.fromarray(label).save(path)


def make_custom(
    root: Path,
    classes: Sequence[str],
    labels: dict[str, Sequence[np.ndarray]],
    *,
    label_suffix: str = ".png",
    image_suffix: str = ".png",
    options: dict[str, Any] | None = None,
) -> Path:
    """Writes ``classes.txt``, one image per label (same size, random pixels) and ``dataset.yaml``.

    Args:
        root: The dataset folder.
        classes: Lines of ``classes.txt``.
        labels: Split → label arrays (their dtype is kept: uint8 or uint16).
        label_suffix: ``.png``, ``.tif`` or ``.tiff``.
        image_suffix: Image file suffix.
        options: ``dataset.yaml`` content, if any.

    Returns:
        ``root``. Files are named ``<split>_<i>``.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    if options is not None:
        (root / "dataset.yaml").write_text(yaml.safe_dump(options))
    for split, arrays in labels.items():
        for i, label in enumerate(arrays):
            stem = f"{split}_{i}"
            image_path = root / "images" / split / f"{stem}{image_suffix}"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb(*label.shape, seed=i)).save(image_path)
            write_label(root / "labels" / split / f"{stem}{label_suffix}", label)
    return root
