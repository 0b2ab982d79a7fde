"""ADE20K-150 (SceneParsing, ``ADEChallengeData2016``) → ``annotations_detectron2`` (uint8 PNG, ignore 255).

The official annotations store 0 for "other" and ``1..150`` for the classes; the layout shifts them by
one (``0 → 255``, ``v → v - 1``), as detectron2's / SAN's ``datasets/prepare_ade20k_sem_seg.py``
(https://github.com/MendelXu/SAN/blob/main/datasets/prepare_ade20k_sem_seg.py).

Expected download (``--src``, ``ADEChallengeData2016.zip`` unzipped; may be ``<root>/ADEChallengeData2016``)::

    <src>/images/{training,validation}/ADE_*.jpg
    <src>/annotations/{training,validation}/ADE_*.png
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrovseg.data.image_io import load_label
from mrovseg.data.prepare.common import (
    PrepareError,
    PrepareReport,
    apply_lut,
    base_parser,
    make_lut,
    parallel_map,
    place_image,
    require_dir,
    run_cli,
    same_folder,
    save_png,
)

__all__ = ["ade150_lut", "main", "prepare_ade150"]

EXPECTED = (
    "<src>/images/{training,validation}/*.jpg and <src>/annotations/{training,validation}/*.png "
    "(ADEChallengeData2016.zip from http://sceneparsing.csail.mit.edu, values 0..150)"
)


def ade150_lut() -> np.ndarray:
    """Raw value → layout value: ``0 → 255``, ``1..150 → 0..149``; anything else is invalid."""
    return make_lut(256, {0: 255, **{v: v - 1 for v in range(1, 151)}})


_LUT = ade150_lut()


def _convert(job: tuple[Path, Path]) -> None:
    src, dst = job
    save_png(apply_lut(load_label(src), _LUT, src, np.uint8), dst)


def prepare_ade150(
    src: Path,
    root: Path,
    splits: Sequence[str] = ("training", "validation"),
    image_mode: str = "symlink",
    workers: int = 1,
) -> PrepareReport:
    """Writes ``<root>/ADEChallengeData2016/annotations_detectron2/<split>`` and places the images.

    Args:
        src: The unzipped ``ADEChallengeData2016`` folder.
        root: Dataset root.
        splits: Official split folders (``training``, ``validation``).
        image_mode: ``symlink``, ``copy`` or ``hardlink`` for images (no-op when preparing in place).
        workers: Processes converting labels.
    """
    report = PrepareReport("ade150", root)
    out_root = root / "ADEChallengeData2016"
    for split in splits:  # check every input before converting anything
        require_dir(src / "images" / split, f"ADE20K {split} image", EXPECTED)
        require_dir(src / "annotations" / split, f"ADE20K {split} annotation", EXPECTED)
    for split in splits:
        image_dir = require_dir(src / "images" / split, f"ADE20K {split} image", EXPECTED)
        label_dir = require_dir(src / "annotations" / split, f"ADE20K {split} annotation", EXPECTED)
        labels = sorted(label_dir.glob("*.png"))
        if not labels:
            raise PrepareError(f"no *.png annotations in {label_dir}\nexpected: {EXPECTED}")
        out_labels = out_root / "annotations_detectron2" / split
        out_images = out_root / "images" / split
        for label in labels:
            if not (image_dir / f"{label.stem}.jpg").is_file():
                raise PrepareError(
                    f"annotation {label} has no image: expected {image_dir / (label.stem + '.jpg')}\n"
                    f"expected: {EXPECTED}"
                )
        parallel_map(_convert, [(label, out_labels / label.name) for label in labels], workers)
        report.add(split, "labels", len(labels))
        if not same_folder(image_dir, out_images):
            for lab in labels:
                place_image(image_dir / f"{lab.stem}.jpg", out_images / f"{lab.stem}.jpg", image_mode)
        report.add(split, "images", len(labels))
        report.note_output(split, out_images)
        report.note_output(split, out_labels)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_ade150.py --src <ADEChallengeData2016> [--root <datasets>]``."""
    parser = base_parser(__doc__ or "", "the unzipped ADEChallengeData2016 folder")
    parser.add_argument("--splits", nargs="+", default=["training", "validation"], help="official splits")
    args = parser.parse_args(argv)
    return run_cli(lambda: prepare_ade150(args.src, args.root, args.splits, args.image_mode, args.workers))
