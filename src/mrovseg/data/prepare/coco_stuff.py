"""COCO-Stuff-164k: official ``stuffthingmaps_trainval2017`` → 171 contiguous ids (``stuffthingmaps_detectron2``).

The official maps store ``COCO category id - 1`` per pixel (0 = person ... 181 = wood) and 255 for
unlabeled. 11 of the 182 ids are never used (COCO thing ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91:
street sign, hat, shoe, eye glasses, plate, mirror, window, desk, door, blender, hair brush); the other
171 become 0..170 in id order, everything else 255. This is the mapping of MaskFormer's
``datasets/prepare_coco_stuff_164k_sem_seg.py`` and CAT-Seg's ``datasets/prepare_coco_stuff.py``
(https://github.com/KU-CVLAB/CAT-Seg/blob/main/datasets/prepare_coco_stuff.py), whose order is
:data:`mrovseg.data.vocabularies.COCO_STUFF_171`.

Expected download (``--src``, e.g. ``coco/`` itself to prepare in place)::

    <src>/train2017/*.jpg, <src>/val2017/*.jpg                      # train2017.zip, val2017.zip
    <src>/stuffthingmaps/{train2017,val2017}/*.png                  # stuffthingmaps_trainval2017.zip
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

__all__ = ["COCO_STUFF_171_IDS", "coco_stuff_lut", "main", "prepare_coco_stuff"]

_UNUSED_COCO_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91)

#: The 171 COCO-Stuff category ids (1-based) in contiguous-id order.
COCO_STUFF_171_IDS: tuple[int, ...] = tuple(i for i in range(1, 183) if i not in _UNUSED_COCO_IDS)

EXPECTED = (
    "<src>/{train2017,val2017}/*.jpg (COCO images) and <src>/stuffthingmaps/{train2017,val2017}/*.png "
    "(stuffthingmaps_trainval2017.zip, pixel = COCO id - 1, 255 unlabeled); "
    "see https://github.com/nightrome/cocostuff"
)


def coco_stuff_lut() -> np.ndarray:
    """Raw stuffthingmap value → contiguous id (unused ids and 255 → 255; 182..254 invalid)."""
    mapping = {raw: 255 for raw in range(182)}
    mapping.update({coco_id - 1: idx for idx, coco_id in enumerate(COCO_STUFF_171_IDS)})
    mapping[255] = 255
    return make_lut(256, mapping)


_CONVERT = LabelConverter(coco_stuff_lut())


def prepare_coco_stuff(
    src: Path,
    root: Path,
    splits: Sequence[str] = ("train2017", "val2017"),
    labels_dir: Path | None = None,
    image_mode: str = "symlink",
    workers: int = 1,
) -> PrepareReport:
    """Converts COCO-Stuff stuffthingmaps and places the images under ``<root>/coco``.

    Args:
        src: Folder holding ``train2017/``, ``val2017/`` images (and ``stuffthingmaps/``).
        root: Dataset root.
        splits: Official split folders to convert.
        labels_dir: Folder holding ``train2017/``, ``val2017/`` stuffthingmaps (default ``<src>/stuffthingmaps``).
        image_mode: ``symlink``, ``copy`` or ``hardlink`` for images (no-op when ``src`` is ``<root>/coco``).
        workers: Processes converting labels.
    """
    labels_dir = labels_dir or src / "stuffthingmaps"
    folders = [  # every input is checked before anything is converted
        SplitFolders(
            split,
            images=require_dir(src / split, f"COCO {split} image", EXPECTED),
            labels=require_dir(labels_dir / split, f"COCO-Stuff {split} stuffthingmaps", EXPECTED),
            out_images=root / "coco" / split,
            out_labels=root / "coco" / "stuffthingmaps_detectron2" / split,
        )
        for split in splits
    ]
    report = PrepareReport("coco_stuff", root)
    prepare_paired_splits(
        report,
        folders,
        _CONVERT,
        label_suffix=".png",
        image_suffix=".jpg",
        what="stuffthingmap",
        expected=EXPECTED,
        image_mode=image_mode,
        workers=workers,
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_coco_stuff.py --src <coco download> [--root <datasets>]``."""
    parser = base_parser(__doc__ or "", "folder with train2017/, val2017/ and stuffthingmaps/ (see above)")
    parser.add_argument(
        "--labels", type=Path, default=None, help="stuffthingmaps folder (default: <src>/stuffthingmaps)"
    )
    parser.add_argument(
        "--splits", nargs="+", default=["train2017", "val2017"], help="official splits to convert"
    )
    args = parser.parse_args(argv)
    return run_cli(
        lambda: prepare_coco_stuff(
            args.src, args.root, args.splits, args.labels, args.image_mode, args.workers
        )
    )
