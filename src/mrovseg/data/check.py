"""The dataset check of ``data=custom``: every problem of a user's dataset, before any work starts.

Two parts:

- **fast** (run at the start of training and evaluation): ``classes.txt`` and ``dataset.yaml``,
  missing folders, images without labels and labels without images, two files with one stem,
  unreadable headers, labels that are not single-channel integer maps, image/label size
  mismatches. Only file headers are read.
- **full** (``python -m mrovseg.check_data``): the fast part, plus every label map decoded: values
  outside ``[0, K) ∪ {ignore}`` (file, value, pixel count), classes that never occur, and the
  per-class pixel-share table.

Each problem is a :class:`~mrovseg.data.custom_layout.Finding` with a stable ``code``; the README's
"Your own dataset" section says what to do about each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from mrovseg.data.custom_layout import LAYOUT_HELP, CustomLayout, Finding, SplitFiles, read_layout
from mrovseg.data.image_io import ImageReadError, load_label

__all__ = ["CheckReport", "DatasetCheckError", "check_dataset", "label_value_problems"]

_LIST = 5  # files named per finding before "... and N more"
_LABEL_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I;16N", "I", "1")


class DatasetCheckError(ValueError):
    """The dataset check found errors; the message lists them (the same lines ``check_data`` prints)."""


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes:
        layout: The parsed vocabulary and options.
        findings: Every error, warning and note, in check order.
        splits: Split name → its files.
        pixel_counts: Split name → pixels per raw label value (``K`` entries), full check only.
        ignored_pixels: Split name → number of ignore pixels, full check only.
    """

    layout: CustomLayout
    findings: list[Finding] = field(default_factory=list)
    splits: dict[str, SplitFiles] = field(default_factory=dict)
    pixel_counts: dict[str, np.ndarray] = field(default_factory=dict)
    ignored_pixels: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def add(self, level: str, code: str, message: str) -> None:
        self.findings.append(Finding(level, code, message))  # type: ignore[arg-type]

    def raise_if_errors(self) -> None:
        """Raises :class:`DatasetCheckError` listing every error (and the warnings after them)."""
        if self.errors:
            lines = [str(f) for f in self.errors] + [str(f) for f in self.findings if f.level == "warning"]
            raise DatasetCheckError(
                f"dataset {self.layout.root} failed its check ({len(self.errors)} error(s)):\n"
                + "\n".join(lines)
                + f"\nrun `python -m mrovseg.check_data data=custom data.root={self.layout.root}` for the full report"
            )

    def class_table(self) -> str:
        """Per-class pixel shares (percent of labelled pixels) of each checked split."""
        layout, splits = self.layout, list(self.pixel_counts)
        if not splits:
            return ""
        novel = {i + layout.offset for i in layout.novel_classes}
        header = f"{'value':>5}  {'class':<28}" + "".join(f"{s + ' %':>10}" for s in splits)
        rows = [header, "-" * len(header)]
        totals = {s: max(int(self.pixel_counts[s].sum()), 1) for s in splits}
        for value, line in enumerate(layout.class_lines):
            name = line.strip() or "<empty>"
            if value < layout.offset:
                name += " (ignored background)"
            elif value in novel:
                name += " (novel)"
            shares = "".join(f"{100.0 * self.pixel_counts[s][value] / totals[s]:>10.2f}" for s in splits)
            rows.append(f"{value:>5}  {name[:28]:<28}{shares}")
        ignored = "".join(
            f"{100.0 * self.ignored_pixels[s] / max(totals[s] + self.ignored_pixels[s], 1):>10.2f}"
            for s in splits
        )
        rows.append(f"{'':>5}  {'ignore (% of all pixels)':<28}{ignored}")
        return "\n".join(rows)

    def text(self) -> str:
        """The printed report: counts per split, the findings, and the class table."""
        out = [f"dataset {self.layout.root}: {self.layout.num_raw_classes} label values in classes.txt"]
        for split, files in self.splits.items():
            out.append(f"  {split}: {len(files.pairs)} image/label pairs")
        out += [str(f) for f in self.findings]
        table = self.class_table()
        if table:
            out += ["", "pixel share per class:", table]
        n_err, n_warn = len(self.errors), sum(f.level == "warning" for f in self.findings)
        out.append(f"{n_err} error(s), {n_warn} warning(s)")
        return "\n".join(out)


def _names(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_LIST])
    return shown + (f" ... and {len(paths) - _LIST} more" if len(paths) > _LIST else "")


def _check_files(report: CheckReport, split: str) -> SplitFiles:
    layout = report.layout
    for folder in (layout.image_dir(split), layout.label_dir(split)):
        if not folder.is_dir():
            report.add("error", "no-split", f"folder {folder} is missing; {LAYOUT_HELP}")
    files = layout.pairs(split)
    report.splits[split] = files
    if layout.image_dir(split).is_dir() and layout.label_dir(split).is_dir() and not files.pairs:
        report.add(
            "error",
            "empty-split",
            f"no image/label pairs in {layout.image_dir(split)} and {layout.label_dir(split)}",
        )
    if files.images_without_labels:
        report.add(
            "error",
            "image-without-label",
            f"{len(files.images_without_labels)} image(s) of {split} have no label "
            f"(expected {layout.label_dir(split)}/<stem>.png): {_names(files.images_without_labels)}",
        )
    if files.labels_without_images:
        report.add(
            "error",
            "label-without-image",
            f"{len(files.labels_without_images)} label(s) of {split} have no image "
            f"(expected {layout.image_dir(split)}/<stem>.jpg|png|...): {_names(files.labels_without_images)}",
        )
    for group in files.duplicates:
        report.add("error", "duplicate-stem", f"files share one stem, keep one: {_names(group)}")
    if files.other_files:
        report.add(
            "warning",
            "unknown-file",
            f"{len(files.other_files)} file(s) of unknown type ignored: {_names(files.other_files)}",
        )
    return files


def _label_header(path: Path) -> tuple[tuple[int, int], str]:
    """``((width, height), kind)`` of a label file from its header; kind is ``ok`` or a problem."""
    if path.suffix.lower() in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shape, dtype = page.shape, np.dtype(page.dtype) if page.dtype is not None else None
        if len(shape) == 3 and shape[-1] == 1:
            shape = shape[:2]
        if len(shape) != 2 or dtype is None or dtype.kind not in "iub":
            return (shape[1], shape[0]) if len(shape) >= 2 else (0, 0), f"shape {shape} dtype {dtype}"
        return (shape[1], shape[0]), "ok"
    with Image.open(path) as img:
        return img.size, "ok" if img.mode in _LABEL_MODES else f"image mode {img.mode}"


def _check_headers(report: CheckReport, split: str, files: SplitFiles) -> None:
    unreadable: list[str] = []
    bad_mode: list[str] = []
    mismatched: list[str] = []
    for _stem, image, label in files.pairs:
        try:
            with Image.open(image) as img:
                image_size = img.size
        except Exception as err:  # any decoder error: name the file
            unreadable.append(f"{image} ({type(err).__name__}: {err})")
            continue
        try:
            label_size, kind = _label_header(label)
        except Exception as err:
            unreadable.append(f"{label} ({type(err).__name__}: {err})")
            continue
        if kind != "ok":
            bad_mode.append(f"{label} ({kind})")
        elif label_size != image_size:
            mismatched.append(
                f"{label} is {label_size[0]}x{label_size[1]} but {image.name} is {image_size[0]}x{image_size[1]}"
            )
    if unreadable:
        report.add(
            "error",
            "unreadable",
            f"{len(unreadable)} file(s) of {split} cannot be read: {_names(unreadable)}",
        )
    if bad_mode:
        report.add(
            "error",
            "label-not-index-map",
            f"{len(bad_mode)} label(s) of {split} are not single-channel integer maps (colour masks? convert "
            f"them with `python scripts/prepare_custom.py colour ...`): {_names(bad_mode)}",
        )
    if mismatched:
        report.add(
            "error",
            "size-mismatch",
            f"{len(mismatched)} label(s) of {split} differ in size from their image (width x height): "
            f"{_names(mismatched)}",
        )


def label_value_problems(raw: np.ndarray, num_classes: int, ignore: int) -> list[tuple[int, int]]:
    """``(value, pixel count)`` of every value of ``raw`` outside ``[0, num_classes) ∪ {ignore}``."""
    if raw.size == 0 or (int(raw.max()) < num_classes and int(raw.min()) >= 0):
        return []
    bad = raw[((raw < 0) | (raw >= num_classes)) & (raw != ignore)]
    values, counts = np.unique(bad, return_counts=True)
    return [(int(v), int(c)) for v, c in zip(values, counts)]


def _check_values(report: CheckReport, split: str, files: SplitFiles) -> None:
    layout = report.layout
    k = layout.num_raw_classes
    counts = np.zeros(k, np.int64)
    ignored = 0
    for _stem, _image, label in files.pairs:
        try:
            raw = load_label(label)
        except ImageReadError as err:
            report.add("error", "unreadable", str(err))
            continue
        ignore = layout.ignore_for(raw.dtype)
        problems = label_value_problems(raw, k, ignore)
        if problems:
            listed = ", ".join(f"value {v} ({c} pixels)" for v, c in problems[:10])
            report.add(
                "error",
                "bad-label-value",
                f"label {label} holds {listed}{' ...' if len(problems) > 10 else ''}; allowed: 0..{k - 1} "
                f"(classes.txt has {k} lines) and ignore {ignore}",
            )
        valid = raw[(raw >= 0) & (raw < k)].astype(np.int64)
        counts += np.bincount(valid.ravel(), minlength=k)[:k]
        ignored += int((raw == ignore).sum())
    report.pixel_counts[split] = counts
    report.ignored_pixels[split] = ignored
    novel = {i + layout.offset for i in layout.novel_classes}
    never = [v for v in range(layout.offset, k) if counts[v] == 0 and not (split == "train" and v in novel)]
    if never and files.pairs:
        shown = ", ".join(f"{v} {layout.class_lines[v].strip()!r}" for v in never[:20])
        report.add(
            "warning",
            "class-never-occurs",
            f"{len(never)} class(es) never occur in {split}: {shown}{' ...' if len(never) > 20 else ''}",
        )


def check_dataset(
    root: str | Path,
    splits: Sequence[str] = ("train", "val"),
    full: bool = True,
    batch_size: int | None = None,
    train_split: str = "train",
) -> CheckReport:
    """Checks a custom dataset (fast part, plus the label values when ``full``).

    Args:
        root: The dataset folder.
        splits: Splits to check (``train`` and/or ``val``).
        full: Also decode every label map (values, pixel shares, classes that never occur).
        batch_size: Training batch size when incomplete batches are dropped: a training split with
            fewer pairs would run no step.
        train_split: Which of ``splits`` is the training split.

    Returns:
        The report; :meth:`CheckReport.raise_if_errors` turns its errors into an exception.
    """
    layout = read_layout(root)
    report = CheckReport(layout, findings=list(layout.findings))
    if not layout.root.is_dir() or not layout.class_lines:
        return report
    if layout.num_raw_classes > 255 and layout.ignore_value is None:
        report.add(
            "info",
            "uint16-labels",
            f"{layout.num_raw_classes} classes: store labels as uint16 PNG/TIFF (uint8 holds values up to 254, 255 is ignore)",
        )
    for split in splits:
        files = _check_files(report, split)
        _check_headers(report, split, files)
        if full:
            _check_values(report, split, files)
        if split == train_split and batch_size and files.pairs and len(files.pairs) < batch_size:
            report.add(
                "error",
                "too-few-train-images",
                f"{split} has {len(files.pairs)} image(s), fewer than data.batch_size={batch_size}: "
                "with drop_last no training step would run; lower data.batch_size or add images",
            )
    return report
