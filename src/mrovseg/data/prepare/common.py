"""Shared pieces of the prepare scripts: input checks, label mapping, writers, split walkers, report, CLI.

Each ``prepare_<benchmark>`` function reads an official download (``src``), writes the layout of
:mod:`mrovseg.data.benchmarks` under the dataset root, and returns a :class:`PrepareReport` of what it
wrote. Bad input raises :class:`PrepareError` naming the path and the layout expected there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from mrovseg.data.image_io import load_label

__all__ = [
    "INVALID",
    "LabelConverter",
    "PrepareError",
    "PrepareReport",
    "SplitFolders",
    "apply_lut",
    "base_parser",
    "default_root",
    "make_lut",
    "parallel_map",
    "place_image",
    "place_images",
    "prepare_paired_splits",
    "read_id_list",
    "require_dir",
    "require_file",
    "require_image",
    "require_split_lists",
    "run_cli",
    "same_folder",
    "save_png",
    "save_tiff",
]

#: Marks a raw label value that must not occur in the input (see :func:`apply_lut`).
INVALID = -1

_J = TypeVar("_J")
_R = TypeVar("_R")


class PrepareError(ValueError):
    """The official download is missing, incomplete or holds unexpected values."""


@dataclass
class PrepareReport:
    """Counts of what a prepare run wrote, per split."""

    benchmark: str
    root: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    outputs: dict[str, list[Path]] = field(default_factory=dict)

    def add(self, split: str, what: str, n: int = 1) -> None:
        """Adds ``n`` to the ``what`` count (``images``, ``labels``, ``skipped``...) of ``split``."""
        per_split = self.counts.setdefault(split, {"images": 0, "labels": 0})
        per_split[what] = per_split.get(what, 0) + n

    def note_output(self, split: str, folder: Path) -> None:
        """Remembers an output folder of ``split`` for the summary."""
        self.outputs.setdefault(split, [])
        if folder not in self.outputs[split]:
            self.outputs[split].append(folder)

    def add_samples(self, split: str, n: int, *outputs: Path) -> None:
        """Counts ``n`` images and ``n`` labels written for ``split`` and remembers its output folders."""
        self.add(split, "images", n)
        self.add(split, "labels", n)
        for folder in outputs:
            self.note_output(split, folder)

    def summary(self) -> str:
        """Human-readable summary: one line per split with its counts and output folders."""
        lines = [f"{self.benchmark}: prepared under {self.root}"]
        for split, counts in self.counts.items():
            parts = ", ".join(f"{n} {what}" for what, n in counts.items())
            folders = ", ".join(str(f) for f in self.outputs.get(split, []))
            lines.append(f"  {split}: {parts}" + (f" -> {folders}" if folders else ""))
        return "\n".join(lines)


def default_root() -> Path:
    """``$DETECTRON2_DATASETS``, or ``datasets`` when unset (as detectron2 and SAN)."""
    return Path(os.environ.get("DETECTRON2_DATASETS", "datasets"))


def require_dir(path: Path, what: str, expected: str) -> Path:
    """Returns ``path`` if it is a folder, else raises :class:`PrepareError` describing ``expected``."""
    if not path.is_dir():
        raise PrepareError(f"{what} folder not found: {path}\nexpected: {expected}")
    return path


def require_file(path: Path, what: str, expected: str) -> Path:
    """Returns ``path`` if it is a file, else raises :class:`PrepareError` describing ``expected``."""
    if not path.is_file():
        raise PrepareError(f"{what} not found: {path}\nexpected: {expected}")
    return path


def require_image(image: Path, label: Path, what: str, expected: str | None = None) -> Path:
    """Returns ``image`` if it is a file, else raises :class:`PrepareError` naming the ``what`` ``label``."""
    if not image.is_file():
        hint = f"\nexpected: {expected}" if expected else ""
        raise PrepareError(f"{what} {label} has no image: expected {image}{hint}")
    return image


def require_split_lists(folder: Path, splits: Sequence[str], expected: str) -> list[tuple[str, Path]]:
    """``(split, <folder>/<split>.txt)`` for every split; all are checked before anything is converted."""
    return [
        (split, require_file(folder / f"{split}.txt", f"{split} split list", expected)) for split in splits
    ]


def read_id_list(path: Path) -> list[str]:
    """Reads a split list (one image id per line, first token of the line; blank lines skipped)."""
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise PrepareError(f"split list {path} is empty")
    return ids


def make_lut(size: int, mapping: dict[int, int], default: int = INVALID) -> np.ndarray:
    """A lookup table ``raw value -> output value`` of ``size`` entries (unlisted values get ``default``)."""
    lut = np.full(size, default, dtype=np.int64)
    for raw, out in mapping.items():
        lut[raw] = out
    return lut


def apply_lut(raw: np.ndarray, lut: np.ndarray, path: Path, dtype: type[np.integer]) -> np.ndarray:
    """Maps a raw label through ``lut``; raw values outside the table or marked INVALID raise.

    Raises:
        PrepareError: Naming ``path`` and the first offending value.
    """
    if raw.ndim != 2:
        raise PrepareError(f"label {path} has shape {raw.shape}; expected a single-channel (H, W) map")
    raw = raw.astype(np.int64, copy=False)
    lo, hi = int(raw.min(initial=0)), int(raw.max(initial=0))
    if lo < 0 or hi >= len(lut):
        bad = lo if lo < 0 else hi
        raise PrepareError(f"label {path} holds value {bad}, outside the values this dataset defines")
    out = lut[raw]
    if (out == INVALID).any():
        bad = int(raw[out == INVALID][0])
        raise PrepareError(f"label {path} holds value {bad}, outside the values this dataset defines")
    return out.astype(dtype)


def save_png(label: np.ndarray, path: Path) -> None:
    """Writes a ``uint8`` label map as a grayscale PNG (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(label.astype(np.uint8, copy=False))).save(path, format="PNG")


def save_tiff(label: np.ndarray, path: Path) -> None:
    """Writes a ``uint16`` label map as an uncompressed 16-bit TIFF (as SAN / MaskFormer do)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(label.astype(np.uint16, copy=False))).save(path, format="TIFF")


@dataclass(frozen=True, eq=False)
class LabelConverter:
    """Job function of :func:`parallel_map` that maps one raw label file through a LUT and writes it.

    Called with ``(src, dst)``; returns whether ``dst`` was written. An instance pickles (the table by
    value, the functions by reference), so it runs in worker processes.

    Attributes:
        lut: Raw value → output value (:func:`make_lut`), applied by :func:`apply_lut`.
        dtype: Output dtype (``uint8`` for PNG, ``uint16`` for TIFF).
        read: Reads the raw label map of ``src``.
        write: Writes the mapped label to ``dst``.
        skip_if_all: Writes nothing for a label whose every pixel maps to this value (VOC's
            background-only maps); None writes every label.
    """

    lut: np.ndarray
    dtype: type[np.integer] = np.uint8
    read: Callable[[Path], np.ndarray] = load_label
    write: Callable[[np.ndarray, Path], None] = save_png
    skip_if_all: int | None = None

    def __call__(self, job: tuple[Path, Path]) -> bool:
        src, dst = job
        label = apply_lut(self.read(src), self.lut, src, self.dtype)
        if self.skip_if_all is not None and (label == self.skip_if_all).all():
            return False
        self.write(label, dst)
        return True


def place_image(src: Path, dst: Path, mode: str) -> None:
    """Puts an image file of the download into the layout.

    Args:
        src: Image in the download.
        dst: Its path in the layout.
        mode: ``symlink`` (absolute link), ``copy`` or ``hardlink``.

    An existing ``dst`` is left alone (re-runs, or preparing in place).
    """
    if dst.exists() or dst.is_symlink():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        dst.symlink_to(src.resolve())
    elif mode == "hardlink":
        os.link(src, dst)
    elif mode == "copy":
        shutil.copyfile(src, dst)
    else:
        raise ValueError(f"unknown image mode {mode!r}; use symlink, copy or hardlink")


def same_folder(a: Path, b: Path) -> bool:
    """Whether two paths name the same existing folder."""
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def place_images(image_dir: Path, out_dir: Path, names: Iterable[str], mode: str) -> None:
    """Places ``image_dir / name`` at ``out_dir / name`` for each name (see :func:`place_image`).

    Does nothing when ``image_dir`` already is ``out_dir`` (preparing in place).
    """
    if same_folder(image_dir, out_dir):
        return
    for name in names:
        place_image(image_dir / name, out_dir / name, mode)


@dataclass(frozen=True)
class SplitFolders:
    """One split of a download whose label tree mirrors its image tree, and where it goes in the layout."""

    split: str
    images: Path
    labels: Path
    out_images: Path
    out_labels: Path


def prepare_paired_splits(
    report: PrepareReport,
    folders: Sequence[SplitFolders],
    convert: Callable[[tuple[Path, Path]], object],
    *,
    label_suffix: str,
    image_suffix: str,
    out_label_suffix: str | None = None,
    recursive: bool = False,
    what: str,
    expected: str,
    image_mode: str,
    workers: int,
) -> None:
    """Converts the labels of each split and places their images, counting both in ``report``.

    The label ``<labels>/<rel>/<stem><label_suffix>`` pairs with the image
    ``<images>/<rel>/<stem><image_suffix>``; ``convert`` writes it to
    ``<out_labels>/<rel>/<stem><out_label_suffix>`` (default: ``label_suffix``) and the image is placed
    at ``<out_images>/<rel>/<stem><image_suffix>``. Every pair of a split is checked before its labels
    are converted.

    Args:
        report: Gets ``images``/``labels`` counts and both output folders per split.
        folders: The splits, in order (their folders already checked by :func:`require_dir`).
        convert: Job function of :func:`parallel_map` taking ``(label, out_label)``.
        label_suffix: End of a label file name in the download.
        image_suffix: End of an image file name.
        out_label_suffix: End of a written label file name.
        recursive: Labels sit in sub-folders (``<rel>`` non-empty, e.g. Cityscapes' ``<city>``).
        what: What a label is called in error messages (``annotation``, ``label``...).
        expected: Description of the download layout, for error messages.
        image_mode: ``symlink``, ``copy`` or ``hardlink`` (see :func:`place_images`).
        workers: Processes converting labels.

    Raises:
        PrepareError: A split without labels, or a label without its image.
    """
    pattern = f"*{label_suffix}"
    for f in folders:
        labels = sorted(f.labels.rglob(pattern) if recursive else f.labels.glob(pattern))
        if not labels:
            where = "under" if recursive else "in"
            raise PrepareError(f"no {pattern} {what}s {where} {f.labels}\nexpected: {expected}")
        jobs, images = [], []
        for label in labels:
            rel = label.relative_to(f.labels).parent / label.name[: -len(label_suffix)]
            require_image(f.images / f"{rel}{image_suffix}", label, what, expected)
            jobs.append((label, f.out_labels / f"{rel}{out_label_suffix or label_suffix}"))
            images.append(f"{rel}{image_suffix}")
        parallel_map(convert, jobs, workers)
        place_images(f.images, f.out_images, images, image_mode)
        report.add_samples(f.split, len(jobs), f.out_images, f.out_labels)


def parallel_map(fn: Callable[[_J], _R], jobs: Sequence[_J], workers: int) -> list[_R]:
    """``[fn(j) for j in jobs]``, in ``workers`` processes (``tqdm.contrib.concurrent.process_map``)
    when ``workers > 1``; a progress bar on stderr for 200 jobs or more."""
    from tqdm import tqdm
    from tqdm.contrib.concurrent import process_map

    bar = {"disable": len(jobs) < 200, "file": sys.stderr, "unit": "file"}
    if workers > 1 and len(jobs) > 1:
        chunksize = max(1, min(64, len(jobs) // (4 * workers)))
        return process_map(fn, jobs, max_workers=workers, chunksize=chunksize, **bar)
    return [fn(job) for job in tqdm(jobs, **bar)]


def base_parser(description: str, src_help: str, image_mode: bool = True) -> argparse.ArgumentParser:
    """The arguments every prepare script takes: ``--src``, ``--root``, ``--workers`` (and ``--image-mode``)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, required=True, help=src_help)
    parser.add_argument(
        "--root",
        type=Path,
        default=default_root(),
        help="dataset root to write the layout into (default: $DETECTRON2_DATASETS or ./datasets)",
    )
    if image_mode:
        parser.add_argument(
            "--image-mode",
            choices=("symlink", "copy", "hardlink"),
            default="symlink",
            help="how images of the download are placed in the layout when it is elsewhere (default: symlink)",
        )
    parser.add_argument("--workers", type=int, default=1, help="processes converting labels (default: 1)")
    return parser


def run_cli(main: Callable[[], PrepareReport]) -> int:
    """Runs a prepare function, printing its summary, or the error and exit code 2 on bad input."""
    try:
        report = main()
    except PrepareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
