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


_LUT = coco_stuff_lut()


def _convert(job: tuple[Path, Path]) -> None:
    src, dst = job
    save_png(apply_lut(load_label(src), _LUT, src, np.uint8), dst)


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
    report = PrepareReport("coco_stuff", root)
    for split in splits:  # check every input before converting anything
        require_dir(src / split, f"COCO {split} image", EXPECTED)
        require_dir(labels_dir / split, f"COCO-Stuff {split} stuffthingmaps", EXPECTED)
    for split in splits:
        image_dir = require_dir(src / split, f"COCO {split} image", EXPECTED)
        label_dir = require_dir(labels_dir / split, f"COCO-Stuff {split} stuffthingmaps", EXPECTED)
        labels = sorted(label_dir.glob("*.png"))
        if not labels:
            raise PrepareError(f"no *.png stuffthingmaps in {label_dir}\nexpected: {EXPECTED}")
        out_labels = root / "coco" / "stuffthingmaps_detectron2" / split
        out_images = root / "coco" / split
        jobs = []
        for label in labels:
            image = image_dir / f"{label.stem}.jpg"
            if not image.is_file():
                raise PrepareError(
                    f"stuffthingmap {label} has no image: expected {image}\nexpected: {EXPECTED}"
                )
            jobs.append((label, out_labels / label.name))
        parallel_map(_convert, jobs, workers)
        report.add(split, "labels", len(jobs))
        if not same_folder(image_dir, out_images):
            for lab in labels:
                place_image(image_dir / f"{lab.stem}.jpg", out_images / f"{lab.stem}.jpg", image_mode)
        report.add(split, "images", len(labels))
        report.note_output(split, out_images)
        report.note_output(split, out_labels)
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
