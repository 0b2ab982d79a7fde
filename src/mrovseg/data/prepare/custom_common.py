"""Writers shared by the converters into the custom layout (``scripts/prepare_custom.py``).

Labels are written as PNG: ``uint8`` (ignore 255) when the vocabulary has at most 255 classes,
else ``uint16`` (ignore 65535), the defaults :mod:`mrovseg.data.custom_layout` reads without a
``dataset.yaml``. ``classes.txt`` is written once; a second split converted into the same folder
must bring the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mrovseg.data.custom_layout import IMAGE_SUFFIXES
from mrovseg.data.prepare.common import PrepareError, place_image

__all__ = [
    "find_by_stem",
    "ignore_value",
    "label_dtype",
    "place_split_image",
    "save_label",
    "write_classes",
]


def label_dtype(num_classes: int) -> type[np.integer]:
    """``uint8`` when the class values and the ignore value 255 fit, else ``uint16``."""
    return np.uint8 if num_classes <= 255 else np.uint16


def ignore_value(num_classes: int) -> int:
    """The default ignore value of the label dtype of ``num_classes`` classes (255 or 65535)."""
    return 255 if num_classes <= 255 else 65535


def save_label(label: np.ndarray, path: Path, num_classes: int) -> None:
    """Writes a class-index map as a ``uint8`` or ``uint16`` grayscale PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.ascontiguousarray(label.astype(label_dtype(num_classes)))
    Image.fromarray(array).save(path, format="PNG")


def write_classes(out: Path, names: Sequence[str]) -> Path:
    """Writes ``out/classes.txt`` (one name per line), or checks an existing one lists the same names.

    Raises:
        PrepareError: An existing ``classes.txt`` (e.g. from converting the other split) differs.
    """
    path = out / "classes.txt"
    text = "".join(f"{n}\n" for n in names)
    if path.is_file():
        old = path.read_text(encoding="utf-8").splitlines()
        if [s.strip() for s in old] != [n.strip() for n in names]:
            first = next(
                (i for i, (a, b) in enumerate(zip(old, names)) if a.strip() != b.strip()),
                min(len(old), len(names)),
            )
            raise PrepareError(
                f"{path} already lists {len(old)} classes that differ from the {len(names)} of this input "
                f"(first difference at line {first + 1}); convert every split with the same classes, or "
                "write into an empty folder"
            )
        return path
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def find_by_stem(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> dict[str, Path]:
    """``stem -> file`` of ``folder``'s files with one of ``suffixes`` (any case).

    Raises:
        PrepareError: Two files share a stem.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in suffixes:
            if path.stem in found:
                raise PrepareError(f"{found[path.stem]} and {path} share the stem {path.stem!r}; keep one")
            found[path.stem] = path
    return found


def place_split_image(src: Path, out: Path, split: str, mode: str) -> Path:
    """Places an input image at ``out/images/<split>/<name>`` (``copy``, ``symlink`` or ``hardlink``)."""
    dst = out / "images" / split / src.name
    place_image(src, dst, mode)
    return dst
