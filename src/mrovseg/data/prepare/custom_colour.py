"""Colour-coded masks + a colour → class table → the custom layout (``prepare_custom.py colour``).

The table, in class order (row i becomes label value i):

- CSV with a header: ``name,r,g,b`` (0–255 each) or ``name,colour`` (``#rrggbb``);
- YAML: a mapping ``name: [r, g, b]`` (or ``"#rrggbb"``), or a list of ``{name: ..., colour: ...}``.

A name given twice maps both colours to one class. The name ``__ignore__`` maps its colours to the
ignore value (e.g. Pascal's void outline ``224,224,192``) and is no class. Masks are read as RGB
(palette PNGs through their palette, alpha dropped) and matched to images by file stem. A colour
the table does not list is an error naming the file, the colour and its pixel count, unless
``unknown="ignore"`` maps it to the ignore value (the report counts those pixels).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from PIL import Image

from mrovseg.data.prepare.common import PrepareError, PrepareReport
from mrovseg.data.prepare.custom_common import (
    find_by_stem,
    ignore_value,
    place_split_image,
    save_label,
    write_classes,
)

__all__ = ["IGNORE_NAME", "colour_mask_to_label", "prepare_colour", "read_colour_table"]

IGNORE_NAME = "__ignore__"
_MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif")


def _parse_colour(value: Any, where: str) -> tuple[int, int, int]:
    if isinstance(value, str) and value.strip().startswith("#") and len(value.strip()) == 7:
        text = value.strip()
        try:
            return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
        except ValueError:
            pass
    elif isinstance(value, (list, tuple)) and len(value) == 3:
        try:
            rgb = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            rgb = ()
        if len(rgb) == 3 and all(0 <= v <= 255 and str(v) == str(raw).strip() for v, raw in zip(rgb, value)):
            return rgb  # type: ignore[return-value]
    raise PrepareError(f"{where}: colour {value!r} is not [r, g, b] (integers 0-255) or '#rrggbb'")


def read_colour_table(path: Path) -> tuple[list[str], dict[tuple[int, int, int], str]]:
    """Reads a colour table (CSV or YAML).

    Returns:
        ``(class names in order, colour -> name)``; ``__ignore__`` is not among the class names.

    Raises:
        PrepareError: Unreadable table, a bad colour, or a colour listed twice.
    """
    if not path.is_file():
        raise PrepareError(f"colour table not found: {path}")
    rows: list[tuple[str, Any, str]] = []  # (name, colour, where)
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        items = list(data.items()) if isinstance(data, dict) else None
        if isinstance(data, list) and all(isinstance(d, dict) and "name" in d for d in data):
            items = [(d["name"], d.get("colour", d.get("color"))) for d in data]
        if items is None:
            raise PrepareError(f"{path}: expected a mapping name: [r, g, b] or a list of {{name, colour}}")
        rows = [(str(n), c, f"{path} entry {n!r}") for n, c in items]
    else:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [h.strip().lower() for h in reader.fieldnames or []]
            reader.fieldnames = fields
            if "name" not in fields or not (
                {"r", "g", "b"} <= set(fields) or {"colour", "color"} & set(fields)
            ):
                raise PrepareError(f"{path}: the CSV header must be name,r,g,b or name,colour; got {fields}")
            for line, row in enumerate(reader, 2):
                colour = (
                    [row["r"], row["g"], row["b"]] if "r" in fields else row.get("colour") or row.get("color")
                )
                rows.append((str(row["name"]).strip(), colour, f"{path} line {line}"))
    names: list[str] = []
    table: dict[tuple[int, int, int], str] = {}
    for name, colour, where in rows:
        if not name:
            raise PrepareError(f"{where}: empty class name")
        rgb = _parse_colour(colour, where)
        if rgb in table:
            raise PrepareError(f"{where}: colour {rgb} is already {table[rgb]!r}")
        table[rgb] = name
        if name != IGNORE_NAME and name not in names:
            names.append(name)
    if not names:
        raise PrepareError(f"{path} lists no class")
    return names, table


def colour_mask_to_label(
    rgb: np.ndarray, table: dict[tuple[int, int, int], int], path: Path, ignore: int, unknown: str
) -> tuple[np.ndarray, int]:
    """Maps an ``(H, W, 3)`` colour mask to class values.

    Returns:
        ``(int64 label (H, W), pixels of unknown colours mapped to ignore)``.

    Raises:
        PrepareError: A colour outside ``table`` when ``unknown="error"``, naming the file and colour.
    """
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    colours, inverse, counts = np.unique(packed.ravel(), return_inverse=True, return_counts=True)
    values = np.empty(len(colours), np.int64)
    missing = []
    for i, c in enumerate(colours.tolist()):
        key = (c >> 16, (c >> 8) & 255, c & 255)
        if key in table:
            values[i] = table[key]
        else:
            values[i] = ignore
            missing.append((key, int(counts[i])))
    if missing and unknown == "error":
        shown = ", ".join(f"{k} ({n} pixels)" for k, n in missing[:5])
        raise PrepareError(
            f"mask {path} holds colour(s) the table does not list: {shown}"
            f"{' ...' if len(missing) > 5 else ''}; add them to the table (as {IGNORE_NAME} to ignore them) "
            "or pass --unknown ignore"
        )
    return values[inverse].reshape(packed.shape), sum(n for _, n in missing)


def prepare_colour(
    out: Path,
    split: str,
    images: Path,
    masks: Path,
    table_path: Path,
    unknown: Literal["error", "ignore"] = "error",
    image_mode: str = "copy",
) -> PrepareReport:
    """Converts the colour masks of one split into ``out/{images,labels}/<split>``.

    Args:
        out: The custom dataset folder (``classes.txt`` is written or checked).
        split: ``train`` or ``val``.
        images: Folder of the images.
        masks: Folder of the colour masks, one per image, same file stem.
        table_path: The colour → class table (CSV or YAML).
        unknown: ``error`` (default) or ``ignore`` for colours the table does not list.
        image_mode: ``copy``, ``symlink`` or ``hardlink``.
    """
    names, colour_names = read_colour_table(table_path)
    k = len(names)
    ignore = ignore_value(k)
    table = {rgb: (ignore if n == IGNORE_NAME else names.index(n)) for rgb, n in colour_names.items()}
    for folder, what in ((images, "image"), (masks, "mask")):
        if not folder.is_dir():
            raise PrepareError(f"{what} folder not found: {folder}")
    image_files, mask_files = find_by_stem(images), find_by_stem(masks, _MASK_SUFFIXES)
    lonely = sorted(set(image_files) ^ set(mask_files))
    if lonely:
        stem = lonely[0]
        what = (
            f"image {image_files[stem]} has no mask in {masks}"
            if stem in image_files
            else (f"mask {mask_files[stem]} has no image in {images}")
        )
        raise PrepareError(f"{what} ({len(lonely)} unmatched files)")
    if not mask_files:
        raise PrepareError(f"no masks in {masks}")
    write_classes(out, names)
    report = PrepareReport("custom (colour masks)", out)
    label_dir = out / "labels" / split
    for stem, mask_path in sorted(mask_files.items()):
        with Image.open(mask_path) as img:
            rgb = np.asarray(img.convert("RGB"))
        with Image.open(image_files[stem]) as img:
            size = img.size
        if (rgb.shape[1], rgb.shape[0]) != size:
            raise PrepareError(
                f"mask {mask_path} is {rgb.shape[1]}x{rgb.shape[0]} but its image is {size[0]}x{size[1]}"
            )
        label, n_unknown = colour_mask_to_label(rgb, table, mask_path, ignore, unknown)
        save_label(label, label_dir / f"{stem}.png", k)
        place_split_image(image_files[stem], out, split, image_mode)
        report.add_samples(split, 1, out / "images" / split, label_dir)
        if n_unknown:
            report.add(split, "unknown-colour pixels ignored", n_unknown)
    report.add(split, "classes", k)
    return report
