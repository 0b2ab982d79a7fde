"""Class colours and overlays: a fixed palette, image/label blending and a legend panel.

``palette`` is fixed and deterministic: colour ``k`` is the same for class index ``k`` in every image
and run (Tableau 10, then golden-ratio hues). ``render_overlay`` draws the blended image with a legend
of the classes present, largest area first. Used by ``mrovseg.predict`` and the notebook.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["blend", "palette", "render_overlay"]

#: The first colours of the palette (Tableau 10); later classes get golden-ratio hues.
_BASE_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


# ---------------------------------------------------------------------------------------- drawing
def palette(num_classes: int) -> np.ndarray:
    """Fixed class colours ``(K, 3)`` uint8: Tableau 10, then golden-ratio hues at varying brightness."""
    colours = list(_BASE_COLOURS[:num_classes])
    for k in range(len(colours), num_classes):
        hue = (k * 0.618033988749895) % 1.0
        sat, val = (0.85, 0.95) if k % 3 == 0 else (0.6, 0.8) if k % 3 == 1 else (0.95, 0.6)
        colours.append(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, val)))
    return np.asarray(colours, dtype=np.uint8).reshape(num_classes, 3)


def blend(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) · image + alpha · colour[label]`` as uint8, in row bands (memory O(W) per row)."""
    out = np.empty_like(image)
    a = round(alpha * 256)
    for y in range(0, image.shape[0], 256):
        img = image[y : y + 256].astype(np.uint16)
        col = colours[labels[y : y + 256]].astype(np.uint16)
        out[y : y + 256] = ((img * (256 - a) + col * a + 128) >> 8).astype(np.uint8)
    return out


def _nearest(labels: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``labels`` sampled (nearest) to ``size``, as int32, in row bands."""
    rows, cols = (((np.arange(n) + 0.5) * (m / n)).astype(np.int64) for n, m in zip(size, labels.shape))
    out = np.empty(size[:2], np.int32)
    for y in range(0, size[0], 256):
        out[y : y + 256] = labels[np.ix_(rows[y : y + 256], cols)]
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _short_name(name: str, limit: int = 36) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def render_overlay(
    image: np.ndarray, labels: np.ndarray, legend: Sequence[Any], colours: np.ndarray, alpha: float = 0.5
) -> Image.Image:
    """The image blended with class colours, with a legend panel on its right.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        labels: ``(H, W)`` class indices; a larger map (an image downscaled for the pixel limit) is sampled
            to the image's size (nearest).
        legend: Entries with ``index``, ``name`` and ``share`` (:meth:`SegmentationResult.legend`), drawn
            top to bottom in the given order.
        colours: ``(K, 3)`` uint8 palette.
        alpha: Weight of the class colours.

    Returns:
        An RGB image ``max(H, legend height) × (W + legend width)``; the image is at the top left.
    """
    if labels.shape != image.shape[:2]:
        labels = _nearest(labels, image.shape[:2])
    h, w = labels.shape
    font_size = int(np.clip(round(min(h, w) / 28), 11, 40))
    font = _font(font_size)
    pad, line = font_size // 2 + 2, int(font_size * 1.5)
    texts = [f"{_short_name(e.name)}  {100 * e.share:.1f}%" for e in legend]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((probe.textlength(t, font=font) for t in texts), default=0)
    panel_w = int(2 * pad + line + text_w) + pad
    panel_h = 2 * pad + line * len(texts)
    canvas = Image.new("RGB", (w + panel_w, max(h, panel_h)), (255, 255, 255))
    canvas.paste(Image.fromarray(blend(image, labels, colours, alpha)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (entry, text) in enumerate(zip(legend, texts)):
        y = pad + i * line
        box = (w + pad, y + 2, w + pad + line - 4, y + line - 2)
        draw.rectangle(box, fill=tuple(int(c) for c in colours[entry.index]), outline=(0, 0, 0))
        draw.text((w + pad + line + 2, y + (line - font_size) // 2), text, fill=(0, 0, 0), font=font)
    return canvas
