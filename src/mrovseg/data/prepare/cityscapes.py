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

from mrovseg.data.prepare.common import (
    LabelConverter,
    PrepareReport,
    SplitFolders,
    base_parser,
    make_lut,
    prepare_paired_splits,
    require_dir,
    run_cli,
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


_CONVERT = LabelConverter(cityscapes_lut())


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
    folders = [  # every input is checked before anything is converted
        SplitFolders(
            split,
            images=require_dir(src / "leftImg8bit" / split, f"Cityscapes {split} leftImg8bit", EXPECTED),
            labels=require_dir(src / "gtFine" / split, f"Cityscapes {split} gtFine", EXPECTED),
            out_images=out_root / "leftImg8bit" / split,
            out_labels=out_root / "gtFine" / split,
        )
        for split in splits
    ]
    report = PrepareReport("cityscapes", root)
    prepare_paired_splits(
        report,
        folders,
        _CONVERT,
        label_suffix=LABEL_IDS_SUFFIX,
        image_suffix=IMAGE_SUFFIX,
        out_label_suffix=TRAIN_IDS_SUFFIX,
        recursive=True,
        what="label",
        expected=EXPECTED,
        image_mode=image_mode,
        workers=workers,
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_cityscapes.py --src <cityscapes> [--root <datasets>]``."""
    parser = base_parser(__doc__ or "", "the Cityscapes folder (leftImg8bit/, gtFine/)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default: train val)")
    args = parser.parse_args(argv)
    return run_cli(
        lambda: prepare_cityscapes(args.src, args.root, args.splits, args.image_mode, args.workers)
    )
