"""Checks of COCO annotations before anything is rasterised (:mod:`.custom_coco`).

Each check returns the reason an annotation is rejected, or None. What passes is safe to hand to
pycocotools, whose C code trusts its input: a NaN or far-away polygon coordinate makes it allocate
gigabytes (the boundary is traced point by point, about 80 bytes per pixel of boundary), and RLE counts
that do not add up to the image size make its decoder write past its buffer. So polygons need finite
numbers, an even count of at least 6, points within one image size of the image and a boundary no longer
than :func:`boundary_limit`; RLEs need the image's size and counts that cover exactly its pixels. Memory
is then bounded by the image size whatever the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["annotation_problem", "boundary_limit", "rle_string_counts", "segmentation_problem"]


def boundary_limit(height: int, width: int) -> int:
    """The longest polygon boundary (in pixels, all polygons of an annotation) accepted on an image."""
    return height * width + 2 * (height + width)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _polygons_problem(polygons: list[Any], height: int, width: int) -> str | None:
    if not polygons:
        return "its segmentation is an empty list (no polygon)"
    length = 0.0
    for i, poly in enumerate(polygons):
        if not isinstance(poly, list):
            return f"polygon {i} is {type(poly).__name__} {str(poly)[:40]!r}, not a list of coordinates"
        if not set(map(type, poly)) <= {int, float}:  # bool, str, None, ...
            bad = next(v for v in poly if type(v) not in (int, float))
            return f"polygon {i} has a non-numeric coordinate {bad!r}"
        if len(poly) < 6 or len(poly) % 2:
            return f"polygon {i} has {len(poly)} coordinates; a polygon needs an even count of at least 6"
        try:
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        except OverflowError:
            return f"polygon {i} has a coordinate too large for a number"
        if not np.isfinite(xy).all():
            return f"polygon {i} has a non-finite coordinate ({xy[~np.isfinite(xy)][0]})"
        outside = (
            (xy[:, 0] < -width) | (xy[:, 0] > 2 * width) | (xy[:, 1] < -height) | (xy[:, 1] > 2 * height)
        )
        if outside.any():
            x, y = xy[outside][0]
            return f"polygon {i} has the point ({x:g}, {y:g}), more than an image size off the {width}x{height} image"
        length += float(np.abs(xy - np.roll(xy, -1, axis=0)).max(axis=1).sum())
    if length > boundary_limit(height, width):
        return (
            f"its polygons' boundary is {length:.0f} px long, more than the {boundary_limit(height, width)} px "
            f"accepted on a {width}x{height} image"
        )
    return None


def rle_string_counts(counts: str | bytes, limit: int) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), or None when the
    string is malformed or its runs add up to more than ``limit``."""
    data = counts.encode("ascii", "replace") if isinstance(counts, str) else bytes(counts)
    out: list[int] = []
    total, p = 0, 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data) or k > 6 or not 48 <= data[p] < 48 + 64:
                return None
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        if x < 0 or total + x > limit:
            return None
        out.append(x)
        total += x
    return out


def _rle_problem(rle: dict[str, Any], height: int, width: int) -> str | None:
    size = rle.get("size")
    if not isinstance(size, list) or [v for v in size if _number(v)] != [height, width]:
        return f"its RLE size {size!r} is not the image's [height, width] = [{height}, {width}]"
    counts, pixels = rle.get("counts"), height * width
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            return "its RLE counts are not all non-negative integers"
        total = sum(counts)
    elif isinstance(counts, (str, bytes)):
        runs = rle_string_counts(counts, pixels)
        if runs is None:
            return f"its compressed RLE counts are malformed or cover more than the image's {pixels} pixels"
        total = sum(runs)
    else:
        return f"its RLE counts are {type(counts).__name__}, not a list of integers or a compressed string"
    if total != pixels:
        return f"its RLE counts cover {total} pixels, not the {pixels} of the {width}x{height} image"
    return None


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """Why a COCO ``segmentation`` (polygons, RLE or compressed RLE) cannot be rasterised, or None."""
    if segmentation is None:
        return "it has no segmentation"
    if isinstance(segmentation, list):
        return _polygons_problem(segmentation, height, width)
    if isinstance(segmentation, dict):
        return _rle_problem(segmentation, height, width)
    return f"its segmentation is {type(segmentation).__name__}, neither polygons nor an RLE"


def annotation_problem(
    ann: Any, sizes: dict[int, tuple[int, int]], categories: dict[int, str] | None
) -> str | None:
    """Why an instances/stuff annotation is rejected, or None.

    Args:
        ann: The annotation.
        sizes: ``image id -> (height, width)`` of the images the files list.
        categories: The known category ids (None: not checked, e.g. panoptic annotations).
    """
    if not isinstance(ann, dict):
        return f"it is {type(ann).__name__}, not a JSON object"
    image_id = ann.get("image_id")
    if not _integer(image_id) or image_id not in sizes:
        return f"its image_id {image_id!r} is not in the images list"
    if categories is None:
        return None
    cid = ann.get("category_id")
    if not _integer(cid) or cid not in categories:
        return f"its category_id {cid!r} is not in the categories list"
    return segmentation_problem(ann.get("segmentation"), *sizes[image_id])
