"""The one image and label reader of the package (training, evaluation and prediction all use it).

``load_image`` returns ``uint8 (H, W, 3)`` RGB whatever the file's mode: grayscale (``L``, ``LA``),
``RGBA``, palette (``P``), 16-bit (``I;16``), 32-bit integer (``I``) and float (``F``) images are
converted; the EXIF orientation of photographs is applied unless asked not to. ``load_label`` returns
the label map as stored (``uint8`` PNG, palette indices of a ``P`` PNG, ``uint16`` PNG or TIFF).
Both raise :class:`ImageReadError`, naming the file, when it is missing or not a readable image.
``save_label_png`` writes predicted label maps (evaluation and prediction use it).

Large images: :func:`image_size` reads the size from the file's header without decoding, and
``load_image(path, max_pixels=n)`` decodes a larger image to at most ``n`` pixels (a JPEG at 1/2, 1/4 or
1/8 scale when that still covers the size, so it is never held whole). Pillow's bomb check stays in force:
an image of more than ``2 × PIL.Image.MAX_IMAGE_PIXELS`` (179 MP by default) is refused with an
:class:`ImageReadError`; with ``max_pixels`` given, Pillow's warning above ``MAX_IMAGE_PIXELS`` is not
shown (the caller bounds the size).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageReadError",
    "array_to_uint8_rgb",
    "image_size",
    "load_image",
    "load_label",
    "save_label_png",
    "to_uint8_rgb",
]

_TIFF_SUFFIXES = (".tif", ".tiff")
_GRAY_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
#: EXIF orientation → the transpose that shows the image upright (as ``ImageOps.exif_transpose``).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TURNS = (
    Image.Transpose.TRANSPOSE,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSVERSE,
    Image.Transpose.ROTATE_90,
)


class ImageReadError(ValueError):
    """A file is missing, unreadable or not an image; the message names the file."""


def _open(path: Path, quiet: bool) -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb error as an :class:`ImageReadError`."""
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as err:
        raise ImageReadError(
            f"refused image {path}: {err} (Pillow's limit, 2 × PIL.Image.MAX_IMAGE_PIXELS; downscale the file "
            "first, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it)"
        ) from None


def image_size(path: str | Path, exif_transpose: bool = True) -> tuple[int, int]:
    """``(H, W)`` of an image file as :func:`load_image` returns it, from the header (nothing decoded).

    Raises:
        ImageReadError: As :func:`load_image`.
    """
    path = Path(path)
    try:
        with _open(path, quiet=True) as img:
            w, h = img.size
            turned = exif_transpose and _orientation(img) in _TURNS
            return (w, h) if turned else (h, w)
    except FileNotFoundError as err:
        raise ImageReadError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


def load_image(path: str | Path, exif_transpose: bool = True, max_pixels: int | None = None) -> np.ndarray:
    """Reads an image file as RGB.

    Args:
        path: Image file (any format Pillow reads: JPEG, PNG, TIFF, BMP, WebP, GIF, ...).
        exif_transpose: Apply the EXIF orientation tag (what a photo viewer shows). Datasets pass
            ``False``: their label maps are drawn on the stored pixel grid, not the rotated one.
        max_pixels: A larger image is decoded downscaled (aspect kept) to at most this many pixels.

    Returns:
        ``uint8`` array ``(H, W, 3)``, RGB, C-contiguous.

    Raises:
        ImageReadError: The file is missing or cannot be decoded as an image.
    """
    path = Path(path)
    try:
        with _open(path, quiet=max_pixels is not None) as img:
            if max_pixels is not None and img.width * img.height > max_pixels:
                return _load_downscaled(img, int(max_pixels), exif_transpose)
            if exif_transpose:
                img = ImageOps.exif_transpose(img)
            return to_uint8_rgb(img)
    except FileNotFoundError as err:
        raise ImageReadError(f"image file not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


def _orientation(img: Image.Image) -> Image.Transpose | None:
    """The transpose that shows an opened image upright, from the EXIF in its header (nothing decoded: the
    EXIF of a PNG whose eXIf chunk follows the pixels is not read)."""
    if img.format == "PNG" and "exif" not in img.info:
        return None
    return _ORIENTATION.get(img.getexif().get(0x0112))


def _load_downscaled(img: Image.Image, max_pixels: int, exif_transpose: bool) -> np.ndarray:
    """``img`` (opened, not decoded) as RGB of at most ``max_pixels`` pixels."""
    method = _orientation(img) if exif_transpose else None
    scale = math.sqrt(max_pixels / (img.width * img.height))
    size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
    img.draft("RGB", size)  # JPEG: decode at 1/2, 1/4 or 1/8 scale when that still covers ``size``
    rgb = img if img.mode == "RGB" else Image.fromarray(to_uint8_rgb(img))
    small = rgb.resize(size, Image.Resampling.BILINEAR)
    return to_uint8_rgb(small.transpose(method) if method is not None else small)


def to_uint8_rgb(img: Image.Image) -> np.ndarray:
    """Converts a Pillow image of any mode to ``uint8 (H, W, 3)`` RGB.

    High-bit-depth grayscale is scaled to 8 bits: ``I;16`` (and ``I`` holding values above 255)
    by ``/ 257`` (65535 -> 255); ``F`` in ``[0, 1]`` by ``* 255``, other ``F`` ranges by min-max
    scaling. Alpha channels are dropped; palette images are expanded through their palette.
    """
    if img.mode == "RGB":
        return np.array(img, dtype=np.uint8)
    if img.mode in _GRAY_HIGH_BIT_MODES:
        gray = _high_bit_gray_to_uint8(np.asarray(img), sixteen_bit=img.mode.startswith("I;16"))
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # avoids Pillow's warning; alpha is dropped below
    return np.array(img.convert("RGB"), dtype=np.uint8)


def array_to_uint8_rgb(array: np.ndarray) -> np.ndarray:
    """Converts an in-memory image array to ``uint8 (H, W, 3)`` RGB with the rules of :func:`to_uint8_rgb`.

    Accepted layouts (channels last): ``(H, W)`` and ``(H, W, 1)`` grayscale, ``(H, W, 2)`` grayscale
    + alpha, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA (alpha dropped). Values: ``uint8`` as is, ``bool``
    as 0/255, ``uint16`` scaled by ``/ 257`` (as ``I;16`` files), other integers as is when in
    ``[0, 255]`` else ``/ 257``, floats in ``[0, 1]`` by ``* 255`` and other float ranges by min-max
    scaling over the whole array (as ``F`` files).

    Raises:
        ValueError: The array is not one of the layouts above (e.g. channels first).
    """
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] in (1, 2):
        arr = arr[:, :, 0]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or 0 in arr.shape:
        raise ValueError(
            f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4) (channels last), got {array.shape}"
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        if arr.dtype.kind not in "uif":
            raise ValueError(f"expected an integer or float image array, got dtype {arr.dtype}")
        arr = _high_bit_gray_to_uint8(arr, sixteen_bit=arr.dtype == np.uint16)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def _high_bit_gray_to_uint8(arr: np.ndarray, sixteen_bit: bool) -> np.ndarray:
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        scaled = arr * 255.0 if lo >= 0.0 and hi <= 1.0 else (arr - lo) * (255.0 / max(hi - lo, 1e-12))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    if not sixteen_bit and arr.min(initial=0) >= 0 and arr.max(initial=0) <= 255:
        return arr.astype(np.uint8)  # 8-bit values held in a 32-bit ``I`` image
    return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)


def load_label(path: str | Path) -> np.ndarray:
    """Reads a label map as stored on disk, without any value mapping.

    PNG labels come back as ``uint8`` (``L`` and palette indices of ``P`` images) or ``uint16``
    (16-bit PNG); TIFF labels (ADE-847, PC-459) as ``uint16`` through ``tifffile``.

    Args:
        path: Label file (``.png`` or ``.tif``/``.tiff``).

    Returns:
        Integer array ``(H, W)``.

    Raises:
        ImageReadError: The file is missing, unreadable, or not a single-channel integer map.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"label file not found: {path}")
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            arr = np.asarray(tifffile.imread(path))
        else:
            with Image.open(path) as img:
                if img.mode not in ("L", "P", "I;16", "I;16L", "I;16B", "I;16N", "I", "1"):
                    raise ImageReadError(
                        f"label {path} has image mode {img.mode!r}; expected a single-channel map "
                        "(uint8 PNG, palette PNG or uint16 PNG/TIFF)"
                    )
                arr = np.array(img)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageReadError(f"cannot read label {path}: {type(err).__name__}: {err}") from err
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.dtype.kind not in "iub":
        raise ImageReadError(
            f"label {path} has shape {arr.shape} and dtype {arr.dtype}; expected a single-channel "
            "integer map (H, W)"
        )
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    return arr


def save_label_png(path: str | Path, labels: np.ndarray, num_classes: int) -> None:
    """Writes a label map as PNG: uint8 when K ≤ 255 (so 255 stays free), else uint16.

    Args:
        path: Output file; its folder is created.
        labels: ``(H, W)`` class indices in ``[0, num_classes)``.
        num_classes: K, the vocabulary size (chooses the bit depth).
    """
    dtype = np.uint8 if num_classes <= 255 else np.uint16
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(dtype)).save(path)
