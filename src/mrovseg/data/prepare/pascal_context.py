"""Pascal Context 59 and 459 from the official annotations (``trainval/*.mat``, ``LabelMap`` of 459 classes).

- **PC-459** (``pcontext_full``, uint16 TIFF, ignore 65535): ``LabelMap - 1``, 0 (unlabeled) → 65535, as
  SAN's ``datasets/prepare_pcontext_sem_seg_459cls.py`` and CAT-Seg's ``prepare_pascal_context_459.py``
  (https://github.com/MendelXu/SAN/blob/main/datasets/prepare_pcontext_sem_seg_459cls.py).
- **PC-59** (``pcontext``, uint8 PNG, ignore 255): the 59 most frequent classes (:data:`PC59_DATASET_IDS`,
  the ``_mapping`` of SAN's ``datasets/prepare_pcontext_sem_seg_59cls.py`` = mmsegmentation's
  ``tools/dataset_converters/pascal_context.py``) become ``0..58`` in id order; the other 400 classes
  and 0 become 255. Those scripts read the 59-class masks through the Detail API
  (``trainval_merged.json``); this one derives them from the same ``.mat`` files, which keeps every pixel
  of the 59 classes and ignores the rest, as the 59-class benchmark defines.

Splits are VOC2010's ``ImageSets/Main/{train,val}.txt`` (4998 / 5105 images), the Pascal Context split;
ids without a ``.mat`` are skipped and counted.

Expected download (``--src``, VOC2010 of ``VOCtrainval_03-May-2010.tar``; ``--context`` defaults to
``<src>/trainval``, the folder of ``trainval.tar.gz`` from https://www.cs.stanford.edu/~roozbeh/pascal-context/)::

    <src>/JPEGImages/<id>.jpg
    <src>/ImageSets/Main/{train,val}.txt
    <context>/<id>.mat               # variable LabelMap, values 0..459
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.io

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
    save_tiff,
)

__all__ = ["PC59_DATASET_IDS", "load_label_map", "main", "pc59_lut", "pc459_lut", "prepare_pcontext"]

# fmt: off
#: ``LabelMap`` ids (1-based, order of the official ``labels.txt``) of the 59 classes, in PC-59 order.
#: Source: https://github.com/MendelXu/SAN/blob/main/datasets/prepare_pcontext_sem_seg_59cls.py (``_mapping``,
#: sorted, background 0 dropped).
PC59_DATASET_IDS: tuple[int, ...] = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98, 104, 105, 113, 115, 144,
    158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308, 324, 326, 347, 349, 354, 355,
    360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)
# fmt: on

EXPECTED = (
    "<src>/JPEGImages/<id>.jpg, <src>/ImageSets/Main/{train,val}.txt (VOC2010) and <context>/<id>.mat "
    "with variable LabelMap (Pascal Context trainval.tar.gz, default <context> = <src>/trainval)"
)


def pc59_lut() -> np.ndarray:
    """``LabelMap`` value → PC-59 id (``0..58``), 255 for the other classes and 0."""
    return make_lut(
        460, {**{v: 255 for v in range(460)}, **{cid: i for i, cid in enumerate(PC59_DATASET_IDS)}}
    )


def pc459_lut() -> np.ndarray:
    """``LabelMap`` value → PC-459 id: ``v - 1``, with 0 → 65535."""
    return make_lut(460, {0: 65535, **{v: v - 1 for v in range(1, 460)}})


def load_label_map(mat_path: Path) -> np.ndarray:
    """The ``LabelMap`` of an official Pascal Context ``.mat`` file."""
    try:
        mat = scipy.io.loadmat(mat_path)
    except (OSError, ValueError, TypeError) as err:
        raise PrepareError(f"cannot read {mat_path}: {err}") from err
    if "LabelMap" not in mat:
        raise PrepareError(
            f"{mat_path} has no variable 'LabelMap' (found {sorted(k for k in mat if not k.startswith('__'))})"
        )
    return np.asarray(mat["LabelMap"])


_CONVERT = {
    59: LabelConverter(pc59_lut(), read=load_label_map),
    459: LabelConverter(pc459_lut(), np.uint16, read=load_label_map, write=save_tiff),
}


def prepare_pcontext(
    src: Path,
    root: Path,
    num_classes: Literal[59, 459],
    splits: Sequence[str] = ("train", "val"),
    context_dir: Path | None = None,
    image_mode: str = "symlink",
    workers: int = 1,
) -> PrepareReport:
    """Writes ``<root>/pcontext/<split>/{image,label}`` (59) or ``<root>/pcontext_full/...`` (459).

    Args:
        src: The ``VOC2010`` folder.
        root: Dataset root.
        num_classes: 59 or 459.
        splits: Splits, read from ``<src>/ImageSets/Main/<split>.txt``.
        context_dir: Folder of the ``.mat`` files (default ``<src>/trainval``).
        image_mode: ``symlink``, ``copy`` or ``hardlink`` for images.
        workers: Processes converting labels.
    """
    if num_classes not in _CONVERT:
        raise ValueError(f"num_classes must be 59 or 459, got {num_classes}")
    context_dir = context_dir or src / "trainval"
    image_dir = require_dir(src / "JPEGImages", "VOC2010 JPEGImages", EXPECTED)
    require_dir(context_dir, "Pascal Context annotation (.mat)", EXPECTED)
    name, suffix = ("pcontext", ".png") if num_classes == 59 else ("pcontext_full", ".tif")
    report = PrepareReport(f"pc{num_classes}", root)
    for split, list_file in require_split_lists(src / "ImageSets" / "Main", splits, EXPECTED):
        ids = read_id_list(list_file)
        out_dir = root / name / split
        jobs, found = [], []
        for image_id in ids:
            mat_path = context_dir / f"{image_id}.mat"
            if not mat_path.is_file():
                continue
            require_image(image_dir / f"{image_id}.jpg", mat_path, "annotation")
            jobs.append((mat_path, out_dir / "label" / f"{image_id}{suffix}"))
            found.append(image_id)
        if not jobs:
            raise PrepareError(
                f"none of the {len(ids)} {split} ids has a .mat file in {context_dir}\nexpected: {EXPECTED}"
            )
        parallel_map(_CONVERT[num_classes], jobs, workers)
        place_images(image_dir, out_dir / "image", [f"{i}.jpg" for i in found], image_mode)
        report.add_samples(split, len(jobs), out_dir)
        report.add(split, "skipped (no .mat)", len(ids) - len(jobs))
    return report


def main(num_classes: Literal[59, 459], argv: Sequence[str] | None = None) -> int:
    """CLI: ``python scripts/prepare_pc{59,459}.py --src <VOC2010> [--context <trainval>] [--root <datasets>]``."""
    parser = base_parser(__doc__ or "", "the VOC2010 folder (JPEGImages/, ImageSets/Main/)")
    parser.add_argument(
        "--context", type=Path, default=None, help="folder of the .mat files (default: <src>/trainval)"
    )
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="splits (default: train val)")
    args = parser.parse_args(argv)
    return run_cli(
        lambda: prepare_pcontext(
            args.src, args.root, num_classes, args.splits, args.context, args.image_mode, args.workers
        )
    )
