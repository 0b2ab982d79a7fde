"""The layout of a user's own dataset (``data=custom``): its vocabulary, options and file pairs.

::

    DIR/classes.txt              one class per line; line i names label value i; synonyms after
                                 commas ("sofa, couch")
    DIR/images/<split>/<stem>.<jpg|jpeg|png|bmp|tif|tiff|webp>
    DIR/labels/<split>/<stem>.<png|tif|tiff>   class index per pixel, uint8 or uint16
    DIR/dataset.yaml             optional (keys below)

``dataset.yaml`` keys:

- ``ignore_value``: the on-disk value of unlabelled pixels; default 255 in uint8 labels and 65535
  in uint16 labels (the value must lie outside ``[0, K)``).
- ``novel``: class names held out of training (a name matches a line of ``classes.txt`` or one of
  its synonyms). Their pixels are ignored in training and their names never reach the training
  vocabulary; evaluation scores every class and reports base/novel/hIoU.
- ``background``: ``class`` (default: every line is a class, e.g. a ``background`` line is trained
  and scored like any other) or ``ignore`` (label value 0 is unlabelled background, as Pascal
  VOC-20 treats it: its pixels are ignored in training and evaluation, line 0 leaves the vocabulary
  and label value i becomes class i - 1).

:func:`read_layout` parses the two files, collecting problems as :class:`Finding` s instead of
stopping at the first (so the checker lists them all); :meth:`CustomLayout.pairs` lists a split's
files. Nothing here decodes pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.vocabularies import split_synonyms

__all__ = [
    "IMAGE_SUFFIXES",
    "LABEL_SUFFIXES",
    "CustomLayout",
    "Finding",
    "SplitFiles",
    "read_layout",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LABEL_SUFFIXES = (".png", ".tif", ".tiff")
_YAML_KEYS = ("ignore_value", "novel", "background")

LAYOUT_HELP = (
    "expected: DIR/classes.txt (one class per line), DIR/images/{train,val}/<stem>.<jpg|png|...>, "
    "DIR/labels/{train,val}/<stem>.png (class index per pixel); see README 'Your own dataset'"
)


@dataclass(frozen=True)
class Finding:
    """One result of a dataset check.

    Attributes:
        level: ``error`` (training and evaluation refuse to start), ``warning`` or ``info``.
        code: Short stable name of the check (the README's table lists them).
        message: What was found, naming the file and the value.
    """

    level: Literal["error", "warning", "info"]
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():7s} [{self.code}] {self.message}"


@dataclass
class SplitFiles:
    """The files of one split: matched ``(stem, image, label)`` triples and what did not match."""

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    images_without_labels: list[Path] = field(default_factory=list)
    labels_without_images: list[Path] = field(default_factory=list)
    duplicates: list[list[Path]] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)


@dataclass
class CustomLayout:
    """A custom dataset's vocabulary and options (``classes.txt`` + ``dataset.yaml``).

    Attributes:
        root: The dataset folder.
        class_lines: The lines of ``classes.txt`` (label value i is ``class_lines[i]``).
        ignore_value: Explicit on-disk ignore value, or None for the per-dtype default.
        novel_names: Names listed under ``novel``.
        background: ``class`` or ``ignore`` (see the module docstring).
        findings: Problems found while reading (errors make the layout unusable).
    """

    root: Path
    class_lines: list[str]
    ignore_value: int | None = None
    novel_names: list[str] = field(default_factory=list)
    background: Literal["class", "ignore"] = "class"
    findings: list[Finding] = field(default_factory=list)

    # ------------------------------------------------------------------ vocabulary
    @property
    def num_raw_classes(self) -> int:
        """K: label values ``0 .. K-1`` are classes on disk."""
        return len(self.class_lines)

    @property
    def offset(self) -> int:
        """1 when label value 0 is ignored background, else 0."""
        return 1 if self.background == "ignore" else 0

    @property
    def class_names(self) -> list[str]:
        """The evaluation vocabulary (every class, background line dropped when ignored)."""
        return [line.strip() for line in self.class_lines[self.offset :]]

    @property
    def novel_classes(self) -> list[int]:
        """Indices (in :attr:`class_names`) of the novel classes; unknown names are skipped."""
        lookup = self._name_lookup()
        return sorted({lookup[n.strip().lower()] for n in self.novel_names if n.strip().lower() in lookup})

    @property
    def seen_classes(self) -> list[int] | None:
        """Indices of the base classes, or None without a ``novel`` list (no base/novel metrics)."""
        if not self.novel_names:
            return None
        novel = set(self.novel_classes)
        return [i for i in range(len(self.class_names)) if i not in novel]

    @property
    def train_class_names(self) -> list[str]:
        """The training vocabulary: the base classes (all classes without a ``novel`` list)."""
        seen = self.seen_classes
        names = self.class_names
        return names if seen is None else [names[i] for i in seen]

    def _name_lookup(self) -> dict[str, int]:
        """Lower-cased full names and synonyms → class index (first occurrence wins)."""
        lookup: dict[str, int] = {}
        for i, name in enumerate(self.class_names):
            for key in (name, *split_synonyms(name)):
                lookup.setdefault(key.strip().lower(), i)
        return lookup

    # ------------------------------------------------------------------ label values
    def ignore_for(self, dtype: np.dtype) -> int:
        """The on-disk ignore value of a label array of ``dtype``."""
        if self.ignore_value is not None:
            return self.ignore_value
        return 255 if np.dtype(dtype).itemsize == 1 else 65535

    def lut(self, train: bool) -> np.ndarray:
        """Lookup table ``raw class value (0..K-1) -> label`` (``IGNORE_INDEX`` for dropped values).

        Evaluation labels index :attr:`class_names`; training labels index :attr:`train_class_names`
        (novel classes → ``IGNORE_INDEX``).
        """
        lut = np.full(self.num_raw_classes, IGNORE_INDEX, np.int32)
        lut[self.offset :] = np.arange(len(self.class_names))
        seen = self.seen_classes
        if train and seen is not None:
            to_train = np.full(len(self.class_names), IGNORE_INDEX, np.int32)
            to_train[seen] = np.arange(len(seen))
            valid = lut >= 0
            lut[valid] = to_train[lut[valid]]
        return lut

    # ------------------------------------------------------------------ files
    def image_dir(self, split: str) -> Path:
        return self.root / "images" / split

    def label_dir(self, split: str) -> Path:
        return self.root / "labels" / split

    def pairs(self, split: str) -> SplitFiles:
        """Matches ``images/<split>`` with ``labels/<split>`` by file stem (hidden files skipped)."""
        out = SplitFiles()
        images, dup_i, other_i = _by_stem(self.image_dir(split), IMAGE_SUFFIXES)
        labels, dup_l, other_l = _by_stem(self.label_dir(split), LABEL_SUFFIXES)
        out.duplicates = dup_i + dup_l
        out.other_files = other_i + other_l
        for stem in sorted(images):
            if stem in labels:
                out.pairs.append((stem, images[stem], labels[stem]))
            else:
                out.images_without_labels.append(images[stem])
        out.labels_without_images = [labels[s] for s in sorted(labels) if s not in images]
        return out


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, Path], list[list[Path]], list[Path]]:
    """``stem -> file`` of the files of ``folder`` with one of ``suffixes`` (any case), the stems
    held by several files, and the other files."""
    found: dict[str, list[Path]] = {}
    other: list[Path] = []
    if folder.is_dir():
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or entry.is_dir():
                    continue
                path = Path(entry.path)
                if path.suffix.lower() in suffixes:
                    found.setdefault(path.stem, []).append(path)
                else:
                    other.append(path)
    duplicates = [sorted(paths) for _, paths in sorted(found.items()) if len(paths) > 1]
    return {stem: sorted(paths)[0] for stem, paths in found.items()}, duplicates, sorted(other)


def _error(findings: list[Finding], code: str, message: str) -> None:
    findings.append(Finding("error", code, message))


def _read_classes(path: Path, findings: list[Finding]) -> list[str]:
    if not path.is_file():
        _error(findings, "no-classes", f"{path} not found; {LAYOUT_HELP}")
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        _error(findings, "no-classes", f"cannot read {path}: {err}")
        return []
    lines = text.splitlines()
    while lines and not lines[-1].strip():  # trailing blank lines are not classes
        lines.pop()
    if not lines:
        _error(findings, "no-classes", f"{path} lists no classes; write one class name per line")
    seen: dict[str, int] = {}
    synonyms: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not split_synonyms(line):
            _error(
                findings,
                "empty-class-name",
                f"{path} line {number} (label value {number - 1}) is empty; every label value needs a "
                "name (write e.g. 'unused' for a value that never occurs)",
            )
            continue
        key = line.strip().lower()
        if key in seen:
            _error(
                findings,
                "duplicate-class-name",
                f"{path}: class name {line.strip()!r} on line {number} (label value {number - 1}) "
                f"repeats line {seen[key]}; merge the two values or rename one",
            )
            continue
        seen[key] = number
        for syn in split_synonyms(line):
            other = synonyms.setdefault(syn.lower(), number)
            if other != number:
                findings.append(
                    Finding(
                        "warning",
                        "shared-synonym",
                        f"{path}: synonym {syn!r} of line {number} also names line {other}; "
                        "the two classes' text embeddings will be close",
                    )
                )
    return lines


def _read_options(layout: CustomLayout, path: Path) -> None:
    findings = layout.findings
    if not path.is_file():
        return
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        _error(findings, "bad-dataset-yaml", f"cannot parse {path}: {err}")
        return
    if not isinstance(data, dict):
        _error(findings, "bad-dataset-yaml", f"{path} must hold a mapping of keys {list(_YAML_KEYS)}")
        return
    for key in data:
        if key not in _YAML_KEYS:
            _error(
                findings, "bad-dataset-yaml", f"{path}: unknown key {key!r}; known keys: {list(_YAML_KEYS)}"
            )
    background = data.get("background", "class")
    if background not in ("class", "ignore"):
        _error(findings, "bad-dataset-yaml", f"{path}: background is {background!r}; use 'class' or 'ignore'")
    else:
        layout.background = background
    ignore = data.get("ignore_value")
    k = layout.num_raw_classes
    if ignore is not None:
        if not isinstance(ignore, int) or isinstance(ignore, bool) or not 0 <= ignore <= 65535:
            _error(
                findings,
                "bad-dataset-yaml",
                f"{path}: ignore_value {ignore!r} is not an integer in [0, 65535]",
            )
        elif ignore < k:
            _error(
                findings,
                "bad-dataset-yaml",
                f"{path}: ignore_value {ignore} is also the label value of class {layout.class_lines[ignore].strip()!r}"
                f" (classes are 0..{k - 1}); choose a value >= {k}"
                + (" or set background: ignore to ignore label value 0" if ignore == 0 else ""),
            )
        else:
            layout.ignore_value = ignore
    novel = data.get("novel") or []
    if isinstance(novel, str) or not isinstance(novel, list) or not all(isinstance(n, str) for n in novel):
        _error(findings, "bad-dataset-yaml", f"{path}: novel must be a list of class names, got {novel!r}")
        return
    layout.novel_names = [n for n in novel if n.strip()]
    lookup = layout._name_lookup()
    for name in layout.novel_names:
        if name.strip().lower() not in lookup:
            _error(
                findings,
                "unknown-novel-class",
                f"{path}: novel class {name!r} is not in classes.txt (known: {layout.class_names[:10]}"
                + (" ..." if len(layout.class_names) > 10 else "")
                + ")",
            )
    if layout.novel_names and len(layout.novel_classes) >= len(layout.class_names):
        _error(
            findings, "bad-dataset-yaml", f"{path}: novel lists every class; keep at least one for training"
        )


def read_layout(root: str | Path) -> CustomLayout:
    """Reads ``classes.txt`` and ``dataset.yaml`` of a custom dataset; problems go to ``findings``."""
    root = Path(str(root)).expanduser()
    findings: list[Finding] = []
    if not root.is_dir():
        _error(findings, "no-root", f"dataset folder {root} does not exist (data.root=...); {LAYOUT_HELP}")
        return CustomLayout(root, [], findings=findings)
    lines = _read_classes(root / "classes.txt", findings)
    layout = CustomLayout(root, lines, findings=findings)
    _read_options(layout, root / "dataset.yaml")
    if layout.background == "ignore" and layout.num_raw_classes < 2:
        _error(findings, "bad-dataset-yaml", f"{root / 'dataset.yaml'}: background: ignore leaves no class")
    return layout
