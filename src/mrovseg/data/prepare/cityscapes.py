"""Cityscapes ``*_gtFine_labelIds.png`` → ``*_gtFine_labelTrainIds.png`` (19 classes, ignore 255).

The id → trainId table is that of the official ``cityscapesscripts/helpers/labels.py``
(https://github.com/mcordts/cityscapesScripts/blob/master/cityscapesscripts/helpers/labels.py): the 19
evaluated classes get ``0..18``, every other id (0..33) 255. The official
``createTrainIdLabelImgs.py`` draws the same maps from the polygon JSON files; reading the
``labelIds`` PNGs gives the same result without the polygon renderer.

Expected download (``--src``, ``leftImg8bit_trainvaltest.zip`` + ``gtFine_trainvaltest.zip`` unzipped;
may be ``<root>/cityscapes`` to prepare in place)::

    <src>/leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png
    <src>/gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png
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

__all__ = ["CITYSCAPES_ID_TO_TRAIN_ID", "cityscapes_lut", "main", "prepare_cityscapes"]

#: Label id → train id of the 19 evaluated classes (all other ids 0..33 → 255).
#: Source: cityscapesscripts/helpers/labels.py (``Label.id``, ``Label.trainId``).
CITYSCAPES_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}

EXPECTED = (
    "<src>/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and "
    "<src>/gtFine/<split>/<city>/<name>_gtFine_labelIds.png (https://www.cityscapes-dataset.com/downloads/)"
)
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"


def cityscapes_lut() -> np.ndarray:
    """Label id (0..33) → train id; other values are invalid."""
    return make_lut(256, {**{i: 255 for i in range(34)}, **CITYSCAPES_ID_TO_TRAIN_ID})


_LUT = cityscapes_lut()


def _convert(job: tuple[Path, Path]) -> None:
    src, dst = job
    save_png(apply_lut(load_label(src), _LUT, src, np.uint8), dst)


def prepare_cityscapes(
    src: Path,
    root: Path,
    splits: Sequence[str] = ("train", "val"),
    image_mode: str = "symlink",
    workers: int = 1,
) -> PrepareReport:
    """Writes ``<root>/cityscapes/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` and places the images.

    Args:
        src: The Cityscapes folder (``leftImg8bit/``, ``gtFine/``).
        root: Dataset root.
        splits: Splits (``train``, ``val``).
        image_mode: ``symlink``, ``copy`` or ``hardlink`` for images (no-op when preparing in place).
        workers: Processes converting labels.
    """
    out_root = root / "cityscapes"
    report = PrepareReport("cityscapes", root)
    for split in splits:  # check every input before converting anything
        require_dir(src / "leftImg8bit" / split, f"Cityscapes {split} leftImg8bit", EXPECTED)
        require_dir(src / "gtFine" / split, f"Cityscapes {split} gtFine", EXPECTED)
    for split in splits:
        image_dir = require_dir(src / "leftImg8bit" / split, f"Cityscapes {split} leftImg8bit", EXPECTED)
        gt_dir = require_dir(src / "gtFine" / split, f"Cityscapes {split} gtFine", EXPECTED)
        labels = sorted(gt_dir.rglob(f"*{LABEL_IDS_SUFFIX}"))
        if not labels:
            raise PrepareError(f"no *{LABEL_IDS_SUFFIX} files under {gt_dir}\nexpected: {EXPECTED}")
        jobs, images = [], []
        for label in labels:
            rel = label.relative_to(gt_dir)
            stem = label.name[: -len(LABEL_IDS_SUFFIX)]
            image = image_dir / rel.parent / f"{stem}{IMAGE_SUFFIX}"
            if not image.is_file():
                raise PrepareError(f"label {label} has no image: expected {image}\nexpected: {EXPECTED}")
            jobs.append((label, out_root / "gtFine" / split / rel.parent / f"{stem}{TRAIN_IDS_SUFFIX}"))
            images.append((image, out_root / "leftImg8bit" / split / rel.parent / image.name))
        parallel_map(_convert, jobs, workers)
        if not same_folder(image_dir, out_root / "leftImg8bit" / split):
            for image, dst in images:
                place_image(image, dst, image_mode)
        report.add(split, "labels", len(jobs))
        report.add(split, "images", len(images))
        report.note_output(split, out_root / "leftImg8bit" / split)
        report.note_output(split, out_root / "gtFine" / split)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_cityscapes.py --src <cityscapes> [--root <datasets>]``."""
    parser = base_parser(__doc__ or "", "the Cityscapes folder (leftImg8bit/, gtFine/)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default: train val)")
    args = parser.parse_args(argv)
    return run_cli(
        lambda: prepare_cityscapes(args.src, args.root, args.splits, args.image_mode, args.workers)
    )
