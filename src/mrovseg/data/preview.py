"""Label overlays to look at (``check_data preview=N``): the image beside the image with its label on top.

Each class gets the colour predict's overlays give it (:func:`mrovseg.serving.overlay.palette`); ignore pixels are shown darkened. Below the
pair a legend names the label values present, so a shifted or wrong class index is visible at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mrovseg.data.custom_layout import CustomLayout
from mrovseg.data.image_io import load_image, load_label
from mrovseg.serving.overlay import palette

__all__ = ["overlay", "write_previews"]

_ROW = 14  # legend row height in pixels


def overlay(
    image: np.ndarray, raw: np.ndarray, num_classes: int, ignore: int, alpha: float = 0.5
) -> np.ndarray:
    """Blends class colours over ``image`` (``uint8 (H, W, 3)``) where ``raw`` holds a class value.

    Values outside ``[0, num_classes)`` other than ``ignore`` are drawn white (a bad value to fix).
    """
    colours = palette(num_classes).astype(np.float32)
    out = image.astype(np.float32)
    raw = raw.astype(np.int64)
    is_class = (raw >= 0) & (raw < num_classes)
    out[is_class] = (1 - alpha) * out[is_class] + alpha * colours[raw[is_class]]
    out[raw == ignore] *= 0.3
    out[~is_class & (raw != ignore)] = 255.0
    return out.round().clip(0, 255).astype(np.uint8)


def _legend(layout: CustomLayout, values: Sequence[int], width: int) -> Image.Image:
    colours = palette(layout.num_raw_classes)
    canvas = Image.new("RGB", (width, _ROW * max(1, len(values))), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for row, value in enumerate(values):
        y = row * _ROW
        if 0 <= value < layout.num_raw_classes:
            draw.rectangle([2, y + 2, 12, y + _ROW - 2], fill=tuple(int(c) for c in colours[value]))
            text = f"{value}: {layout.class_lines[value].strip()}"
        else:
            text = f"{value}: ignore" if value == -1 else f"{value}: NOT A CLASS"
        draw.text((16, y + 1), text, fill=(255, 255, 255))
    return canvas


def write_previews(
    layout: CustomLayout, pairs: Sequence[tuple[str, str, Path, Path]], count: int, out_dir: Path
) -> list[Path]:
    """Writes ``count`` overlays, evenly spread over ``pairs`` (``(split, stem, image, label)``).

    Returns:
        The written PNG files, ``<out_dir>/<split>_<stem>.png``.
    """
    if count <= 0 or not pairs:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    picks = sorted({round(i) for i in np.linspace(0, len(pairs) - 1, min(count, len(pairs)))})
    written = []
    for index in picks:
        split, stem, image_path, label_path = pairs[index]
        image = load_image(image_path, exif_transpose=False)
        raw = load_label(label_path)
        ignore = layout.ignore_for(raw.dtype)
        if raw.shape != image.shape[:2]:  # reported by the check; show the label on a blank canvas
            image = np.zeros((*raw.shape, 3), np.uint8)
        blended = overlay(image, raw, layout.num_raw_classes, ignore)
        values = [int(v) for v in np.unique(raw)]
        values = [-1 if v == ignore else v for v in values]
        h, w = raw.shape
        pair = Image.new("RGB", (2 * w, h))
        pair.paste(Image.fromarray(image), (0, 0))
        pair.paste(Image.fromarray(blended), (w, 0))
        legend = _legend(layout, sorted(values), max(2 * w, 160))
        sheet = Image.new("RGB", (max(2 * w, legend.width), h + legend.height))
        sheet.paste(pair, (0, 0))
        sheet.paste(legend, (0, h))
        path = out_dir / f"{split}_{stem}.png"
        sheet.save(path)
        written.append(path)
    return written
