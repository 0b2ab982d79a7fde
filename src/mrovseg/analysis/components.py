"""Connected components of label maps: the objects of the size analysis and the segments of the oracles.

A segment is a connected component of the pixels of one class (8-connectivity by default: pixels that
touch at a corner belong to one segment; 4 = edges only), found with ``scipy.ndimage.label`` (scipy is a
dependency of the package). Segments of an image are numbered 1..n in one ``(H, W)`` map, 0 where no
segment is (pixels left out by ``valid``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: The neighbourhoods ``connectivity`` may name.
STRUCTURES: dict[int, np.ndarray] = {
    4: ndimage.generate_binary_structure(2, 1),
    8: ndimage.generate_binary_structure(2, 2),
}


@dataclass
class Segments:
    """The segments of one label map.

    Attributes:
        ids: int64 ``(H, W)``: 0 outside every segment, ``i`` inside segment ``i`` (1-based).
        classes: int64 ``(n,)``: the class of segment ``i`` at index ``i - 1``.
        sizes: int64 ``(n,)``: its number of pixels.
    """

    ids: np.ndarray
    classes: np.ndarray
    sizes: np.ndarray

    @property
    def count(self) -> int:
        return len(self.classes)


def structure(connectivity: int) -> np.ndarray:
    """The 3×3 neighbourhood of ``connectivity`` (4 or 8)."""
    if connectivity not in STRUCTURES:
        raise ValueError(f"analysis.connectivity must be 4 or 8, got {connectivity!r}.")
    return STRUCTURES[connectivity]


def class_components(
    label_map: np.ndarray, valid: np.ndarray | None = None, connectivity: int = 8
) -> Segments:
    """Connected components of every class of ``label_map``.

    Args:
        label_map: integer ``(H, W)`` class map.
        valid: bool ``(H, W)``; pixels where it is False belong to no segment (None: all pixels count).
        connectivity: 4 or 8.

    Returns:
        The segments, numbered class by class (ascending class index), then in scan order.
    """
    neighbourhood = structure(connectivity)
    if valid is None:
        valid = np.ones(label_map.shape, dtype=bool)
    ids = np.zeros(label_map.shape, dtype=np.int64)
    classes: list[np.ndarray] = []
    offset = 0
    for cls in np.unique(label_map[valid]):
        components, count = ndimage.label((label_map == cls) & valid, structure=neighbourhood)
        inside = components > 0
        ids[inside] = components[inside] + offset
        classes.append(np.full(count, cls, dtype=np.int64))
        offset += count
    sizes = np.bincount(ids.ravel(), minlength=offset + 1)[1:].astype(np.int64)
    all_classes = np.concatenate(classes) if classes else np.zeros(0, dtype=np.int64)
    return Segments(ids=ids, classes=all_classes, sizes=sizes)


def majority(segments: Segments, values: np.ndarray, valid: np.ndarray, num_values: int) -> np.ndarray:
    """The most frequent entry of ``values`` over each segment's ``valid`` pixels.

    Args:
        segments: the segments of one image.
        values: integer ``(H, W)`` in ``[0, num_values)`` where ``valid``.
        valid: bool ``(H, W)``: the pixels that vote.
        num_values: the number of distinct values.

    Returns:
        int64 ``(n,)``: the winner of segment ``i`` at index ``i - 1`` (ties: the smallest value; -1 for a
        segment without valid pixels). Counts are kept sparse (one entry per segment and value present),
        so many segments and a large vocabulary cost no ``n × K`` table.
    """
    keep = valid & (segments.ids > 0)
    pairs, counts = np.unique(segments.ids[keep] * num_values + values[keep], return_counts=True)
    seg, value = pairs // num_values, pairs % num_values
    order = np.lexsort((value, -counts, seg))  # by segment, then most votes, then smallest value
    seg, value = seg[order], value[order]
    first = np.ones(len(seg), dtype=bool)
    first[1:] = seg[1:] != seg[:-1]
    winner = np.full(segments.count, -1, dtype=np.int64)
    winner[seg[first] - 1] = value[first]
    return winner
