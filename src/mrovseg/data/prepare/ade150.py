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

__all__ = ["ade150_lut", "main", "prepare_ade150"]

EXPECTED = (
    "<src>/images/{training,validation}/*.jpg and <src>/annotations/{training,validation}/*.png "
    "(ADEChallengeData2016.zip from http://sceneparsing.csail.mit.edu, values 0..150)"
)


def ade150_lut() -> np.ndarray:
    """Raw value → layout value: ``0 → 255``, ``1..150 → 0..149``; anything else is invalid."""
    return make_lut(256, {0: 255, **{v: v - 1 for v in range(1, 151)}})


_CONVERT = LabelConverter(ade150_lut())


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
    out_root = root / "ADEChallengeData2016"
    folders = [  # every input is checked before anything is converted
        SplitFolders(
            split,
            images=require_dir(src / "images" / split, f"ADE20K {split} image", EXPECTED),
            labels=require_dir(src / "annotations" / split, f"ADE20K {split} annotation", EXPECTED),
            out_images=out_root / "images" / split,
            out_labels=out_root / "annotations_detectron2" / split,
        )
        for split in splits
    ]
    report = PrepareReport("ade150", root)
    prepare_paired_splits(
        report,
        folders,
        _CONVERT,
        label_suffix=".png",
        image_suffix=".jpg",
        what="annotation",
        expected=EXPECTED,
        image_mode=image_mode,
        workers=workers,
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_ade150.py --src <ADEChallengeData2016> [--root <datasets>]``."""
    parser = base_parser(__doc__ or "", "the unzipped ADEChallengeData2016 folder")
    parser.add_argument("--splits", nargs="+", default=["training", "validation"], help="official splits")
    args = parser.parse_args(argv)
    return run_cli(lambda: prepare_ade150(args.src, args.root, args.splits, args.image_mode, args.workers))
