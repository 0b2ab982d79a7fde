"""Tiny fixtures in MESS's prepared layout (what ``python -m mess.prepare_all_datasets`` writes under
``$DETECTRON2_DATASETS``), for two datasets: ZeroWaste-f, whose class 0 is the background, and BDD100K,
which has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.data.builders import write_image, write_label

#: name -> (image folder, label folder, image ending, label ending, number of classes), as MESS lays them out
#: (``mess/datasets/register_zerowaste.py``, ``register_bdd100k.py``).
MESS_LAYOUT: dict[str, tuple[str, str, str, str, int]] = {
    "zerowaste": (
        "zerowaste-f/splits_final_deblurred/test/data",
        "zerowaste-f/splits_final_deblurred/test/sem_seg",
        ".PNG",
        ".PNG",
        5,
    ),
    "bdd100k": ("bdd100k/images/10k/val", "bdd100k/annotations_detectron2/val", ".jpg", ".png", 19),
}


def write_mess_dataset(
    root: Path, name: str, n: int = 2, shape: tuple[int, int] = (24, 32), seed: int = 0
) -> list[np.ndarray]:
    """Writes ``n`` image/label pairs of ``name`` in MESS's layout; returns the raw labels (255 = ignore)
    in file-name order."""
    image_dir, label_dir, image_suffix, label_suffix, k = MESS_LAYOUT[name]
    rng = np.random.default_rng(seed)
    labels = []
    for i in range(n):
        label = rng.integers(0, k, size=shape).astype(np.uint8)
        label[: shape[0] // 4, : shape[1] // 4] = 255  # a corner of ignored pixels
        write_image(
            root / image_dir / f"img_{i:03d}{image_suffix}", rng.integers(0, 256, (*shape, 3), np.uint8)
        )
        write_label(root / label_dir / f"img_{i:03d}{label_suffix}", label)
        labels.append(label)
    return labels
