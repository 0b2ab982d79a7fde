"""Pascal VOC 2012 → VOC-20 (``annotations_detectron2``, uint8 PNG, ignore 255).

Class ids ``1..20`` become ``0..19``; background (0) and the boundary/void value 255 become 255, as
SAN's ``datasets/prepare_voc_sem_seg.py`` and CAT-Seg's ``datasets/prepare_voc.py``
(https://github.com/MendelXu/SAN/blob/main/datasets/prepare_voc_sem_seg.py). Like them, a label left
with no class pixel at all (only background) is not written, so those images are not scored; the report
counts them. Reads ``SegmentationClass`` (palette PNGs of ``VOCtrainval_11-May-2012.tar``) or
``SegmentationClassAug`` (grayscale PNGs of the SBD-augmented set): both store the class index per pixel.

Expected download (``--src``, the ``VOC2012`` folder; may be ``<root>/VOC2012`` to prepare in place)::

    <src>/JPEGImages/<id>.jpg
    <src>/ImageSets/Segmentation/{train,val}.txt
    <src>/SegmentationClass/<id>.png  or  <src>/SegmentationClassAug/<id>.png
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrovseg.data.prepare.common import (
    LabelConverter,
    PrepareError,
    PrepareReport,
    base_parser,
    make_lut,
    parallel_map,
    place_images,
    read_id_list,
    require_dir,
    require_image,
    require_split_lists,
    run_cli,
)

__all__ = ["main", "prepare_voc20", "voc20_lut"]

EXPECTED = (
    "<src>/JPEGImages/<id>.jpg, <src>/ImageSets/Segmentation/{train,val}.txt and "
    "<src>/SegmentationClass/<id>.png or <src>/SegmentationClassAug/<id>.png (values 0..20, 255)"
)
LABEL_FOLDERS = ("SegmentationClassAug", "SegmentationClass")


def voc20_lut() -> np.ndarray:
    """VOC class index → VOC-20 id: ``1..20 → 0..19``, ``0 → 255``, ``255 → 255``; others invalid."""
    return make_lut(256, {0: 255, 255: 255, **{v: v - 1 for v in range(1, 21)}})


_CONVERT = LabelConverter(voc20_lut(), skip_if_all=255)


def _label_folder(src: Path, labels: str) -> Path:
    if labels != "auto":
        return require_dir(src / labels, f"VOC {labels}", EXPECTED)
    for name in LABEL_FOLDERS:
        if (src / name).is_dir():
            return src / name
    raise PrepareError(
        f"neither {src / LABEL_FOLDERS[0]} nor {src / LABEL_FOLDERS[1]} exists\nexpected: {EXPECTED}"
    )


def prepare_voc20(
    src: Path,
    root: Path,
    splits: Sequence[str] = ("train", "val"),
    labels: str = "auto",
    image_mode: str = "symlink",
    workers: int = 1,
) -> PrepareReport:
    """Writes ``<root>/VOC2012/annotations_detectron2/<split>`` and places ``<root>/VOC2012/JPEGImages``.

    Args:
        src: The ``VOC2012`` folder.
        root: Dataset root.
        splits: Splits, read from ``<src>/ImageSets/Segmentation/<split>.txt``.
        labels: ``SegmentationClass``, ``SegmentationClassAug`` or ``auto`` (Aug if present).
        image_mode: ``symlink``, ``copy`` or ``hardlink`` for images (no-op when preparing in place).
        workers: Processes converting labels.
    """
    image_dir = require_dir(src / "JPEGImages", "VOC2012 JPEGImages", EXPECTED)
    label_dir = _label_folder(src, labels)
    out_root = root / "VOC2012"
    report = PrepareReport("voc20", root)
    for split, list_file in require_split_lists(src / "ImageSets" / "Segmentation", splits, EXPECTED):
        out_labels = out_root / "annotations_detectron2" / split
        jobs = []
        for image_id in read_id_list(list_file):
            label = label_dir / f"{image_id}.png"
            if not label.is_file():
                raise PrepareError(
                    f"{list_file} lists {image_id} but {label} is missing\nexpected: {EXPECTED}"
                )
            require_image(image_dir / f"{image_id}.jpg", label, "label")
            jobs.append((label, out_labels / label.name))
        written = parallel_map(_CONVERT, jobs, workers)
        kept = [job[0].stem for job, ok in zip(jobs, written) if ok]
        place_images(image_dir, out_root / "JPEGImages", [f"{i}.jpg" for i in kept], image_mode)
        report.add_samples(split, len(kept), out_labels)
        report.add(split, "skipped (background only)", len(jobs) - len(kept))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_voc20.py --src <VOC2012> [--labels SegmentationClass] [--root <datasets>]``."""
    parser = base_parser(
        __doc__ or "", "the VOC2012 folder (JPEGImages/, ImageSets/, SegmentationClass[Aug]/)"
    )
    parser.add_argument(
        "--labels",
        choices=("auto", *LABEL_FOLDERS),
        default="auto",
        help="label folder (default: Aug if present)",
    )
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default: train val)")
    args = parser.parse_args(argv)
    return run_cli(
        lambda: prepare_voc20(args.src, args.root, args.splits, args.labels, args.image_mode, args.workers)
    )
