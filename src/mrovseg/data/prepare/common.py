"""Shared pieces of the prepare scripts: input checks, label mapping tables, writers, report, CLI.

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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

__all__ = [
    "INVALID",
    "PrepareError",
    "PrepareReport",
    "apply_lut",
    "base_parser",
    "default_root",
    "make_lut",
    "parallel_map",
    "place_image",
    "read_id_list",
    "require_dir",
    "require_file",
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


def parallel_map(fn: Callable[[_J], _R], jobs: Sequence[_J], workers: int) -> list[_R]:
    """``[fn(j) for j in jobs]``, in ``workers`` processes when ``workers > 1``; prints progress."""
    results: list[_R] = []
    step = max(1, len(jobs) // 20)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            iterator: Iterable[_R] = pool.map(fn, jobs, chunksize=max(1, min(64, len(jobs) // (4 * workers))))
            for i, res in enumerate(iterator, 1):
                results.append(res)
                _progress(i, len(jobs), step)
    else:
        for i, job in enumerate(jobs, 1):
            results.append(fn(job))
            _progress(i, len(jobs), step)
    return results


def _progress(i: int, total: int, step: int) -> None:
    if total >= 200 and (i % step == 0 or i == total):
        print(f"  {i}/{total}", file=sys.stderr, flush=True)


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
