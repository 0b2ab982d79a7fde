"""The pixel limit of :class:`~mrovseg.serving.segmenter.Segmenter` (``predict``, the demo, the API).

An image of more than ``max_pixels`` pixels (:data:`DEFAULT_MAX_PIXELS`, ``predict.yaml``'s
``max_pixels``) is, with ``on_large="downscale"`` (default), decoded downscaled to at most that many pixels
(the size is read from the file's header first; :func:`mrovseg.data.image_io.load_image`), segmented, and
its label map computed at the original size (the scores are upsampled bilinearly in row bands, as for
every image); the log says so. With ``on_large="refuse"`` it is refused before it is decoded
(:class:`ImageTooLargeError`).

The sliding windows keep a ``(K, h, w)`` float32 score map of the working image (after the ``short_side``
resize), so the working image is also kept under ``max_pixels`` and under :data:`SCORE_BYTES` of scores
for the vocabulary's K classes (a native-resolution image or a short side that enlarges a thin strip is
downscaled further, with a log line; refused with ``on_large="refuse"``). Memory then stays in
proportion to the output: about ``SCORE_BYTES`` plus ~10 bytes per output pixel (the int64 label map).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mrovseg.data.image_io import image_size, load_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ON_LARGE",
    "SCORE_BYTES",
    "ImageTooLargeError",
    "check_limit",
    "load_within",
    "working_short_side",
]

log = logging.getLogger(__name__)

#: Default pixel limit (40 MP: a 7700×5200 photo passes; 12000×9000 is downscaled).
DEFAULT_MAX_PIXELS = 40_000_000
#: The working image's per-class scores ``(K, h, w)`` float32 are kept under this many bytes.
SCORE_BYTES = 2 * 2**30
#: What happens to an image above the limit.
ON_LARGE = ("downscale", "refuse")


class ImageTooLargeError(ValueError):
    """An image above the pixel limit with ``on_large="refuse"``; the message says what to change."""


def check_limit(max_pixels: Any, on_large: str) -> tuple[int | None, str]:
    """``(max_pixels, on_large)`` checked: a positive pixel count (``40e6`` is accepted) or None (no limit)."""
    if on_large not in ON_LARGE:
        raise ValueError(f"on_large must be 'downscale' or 'refuse', got {on_large!r}.")
    if max_pixels is None:
        return None, on_large
    try:
        limit = int(float(max_pixels))
    except (TypeError, ValueError):
        limit = 0
    if limit < 1 or isinstance(max_pixels, bool):
        raise ValueError(f"max_pixels must be a positive number of pixels or null, got {max_pixels!r}.")
    return limit, on_large


def _mp(pixels: float) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 1e6 else f"{int(pixels):,} px"


def load_within(
    image: Any, to_rgb: Callable[[Any], np.ndarray], max_pixels: int | None, on_large: str
) -> tuple[np.ndarray, tuple[int, int]]:
    """The image as ``uint8`` RGB of at most ``max_pixels`` pixels, and its original ``(H, W)``.

    A path is measured from its header and decoded downscaled; an array or PIL image (already in memory)
    is converted by ``to_rgb`` and then resized.

    Raises:
        ImageTooLargeError: The image is above the limit and ``on_large="refuse"`` (nothing is decoded).
    """
    is_path = isinstance(image, (str, os.PathLike))
    if max_pixels is None:
        rgb = to_rgb(image)
        return rgb, rgb.shape[:2]
    rgb = None if is_path else to_rgb(image)
    h, w = image_size(image) if is_path else rgb.shape[:2]
    if h * w <= max_pixels:
        rgb = to_rgb(image) if rgb is None else rgb
        return rgb, rgb.shape[:2]
    name = Path(image).name if is_path else "The image"
    if on_large == "refuse":
        raise ImageTooLargeError(
            f"{name} is {w}×{h} = {_mp(h * w)}, more than max_pixels = {_mp(max_pixels)}, and on_large=refuse: "
            "downscale it first, raise max_pixels, or set on_large=downscale to segment it at a lower "
            "resolution (the labels keep the full size)."
        )
    if is_path:
        rgb = load_image(image, max_pixels=max_pixels)
    else:
        rgb = _resize(rgb, math.sqrt(max_pixels / (h * w)))
    log.warning(
        "%s is %d×%d = %s, above max_pixels = %s: segmenting it downscaled to %d×%d; the labels are "
        "upsampled to %d×%d (on_large=refuse refuses such images instead).",
        name,
        w,
        h,
        _mp(h * w),
        _mp(max_pixels),
        rgb.shape[1],
        rgb.shape[0],
        w,
        h,
    )
    return rgb, (h, w)


def _resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return np.array(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def working_short_side(
    size: tuple[int, int], short_side: int | None, num_classes: int, max_pixels: int | None, on_large: str
) -> int:
    """The short side the windows run on: ``short_side`` (None: the image's own), lowered when the working
    image would exceed ``max_pixels`` or :data:`SCORE_BYTES` of scores for ``num_classes`` classes.

    Raises:
        ImageTooLargeError: It would have to be lowered and ``on_large="refuse"``.
    """
    h, w = size
    short = int(short_side) if short_side is not None else min(h, w)
    scale = short / min(h, w)
    pixels = h * scale * w * scale
    limit = min(max_pixels or math.inf, SCORE_BYTES / (4 * max(1, num_classes)))
    if pixels <= limit:
        return short
    lowered = max(1, int(short * math.sqrt(limit / pixels)))
    reason = (
        f"a working image of {w * scale:.0f}×{h * scale:.0f} (short side {short}) would need "
        f"{4 * num_classes * pixels / 2**30:.1f} GiB of scores for {num_classes} classes"
        + (f" and is above max_pixels = {_mp(max_pixels)}" if max_pixels and pixels > max_pixels else "")
    )
    if on_large == "refuse":
        raise ImageTooLargeError(
            f"The image is too large to segment as asked: {reason} (limit {SCORE_BYTES / 2**30:.0f} GiB); "
            "lower short_side or the vocabulary, or set on_large=downscale."
        )
    log.warning("%s: segmenting at short side %d instead (on_large=refuse refuses instead).", reason, lowered)
    return lowered
