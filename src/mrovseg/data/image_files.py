"""Finding input images: files, folders and glob patterns, and unique output names for them."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

__all__ = ["image_suffixes", "output_stems", "resolve_inputs"]

log = logging.getLogger(__name__)


def image_suffixes() -> set[str]:
    """File suffixes Pillow can open (``.jpg``, ``.png``, ``.tif``, ``.webp``, ...)."""
    Image.init()
    return {s.lower() for s in Image.registered_extensions()}


def resolve_inputs(inputs: str | Sequence[str]) -> list[Path]:
    """Expands files, folders (their image files, sorted, not recursive) and glob patterns.

    An explicit file is kept whatever its suffix (it is reported later if it is not an image), as is a
    path that does not exist (reported as failed); duplicates are dropped.

    Raises:
        ValueError: ``inputs`` is empty.
    """
    entries = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs or [])
    if not entries:
        raise ValueError("No inputs: pass inputs=<image file | folder | glob> (or a list [a.jpg,b.png]).")
    suffixes = image_suffixes()
    paths: list[Path] = []
    for entry in entries:
        text = os.path.expanduser(str(entry))
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                log.warning("No image files in folder %s", path)
            paths += found
        elif path.exists() or not glob.has_magic(text):
            paths.append(path)
        else:
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                log.warning("No files match %s", text)
            paths += found
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise ValueError(f"No input images found in {list(map(str, entries))}.")
    return unique


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Output names: the file stem, or ``<stem>_<suffix>`` (then ``-2``, ``-3``, ...) when stems collide."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    used: set[str] = set()
    stems = []
    for p in paths:
        stem = p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower() or 'noext'}"
        candidate, n = stem, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}-{n}"
        used.add(candidate)
        stems.append(candidate)
    return stems
