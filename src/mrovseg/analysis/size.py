"""Object-size bins: objects are ground-truth segments, their size a fraction of the image's area.

Bin ``i`` holds the objects whose area fraction ``f`` satisfies ``edges[i-1] <= f < edges[i]`` (the first
bin starts at 0, the last has no upper end). The default edges 0.1 %, 1 % and 10 % of the image make
four bins; on a 512×683 ADE image they are about 19², 59² and 187² pixels, on the toy world's 96×128
scenes 12, 123 and 1,229 pixels (its small objects, diameter ≤ 8 px, fall in the first two).
Per bin the analysis keeps the confusion matrix of the bin's object pixels
(:class:`mrovseg.analysis.collect.BenchmarkAnalysis`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

#: Default bin edges (fractions of the image area).
DEFAULT_EDGES: tuple[float, ...] = (0.001, 0.01, 0.1)


def check_edges(edges: Sequence[float]) -> tuple[float, ...]:
    """``edges`` as a tuple, checked: strictly increasing fractions in (0, 1)."""
    values = tuple(float(e) for e in edges)
    if not values or any(not 0 < e < 1 for e in values) or any(a >= b for a, b in itertools.pairwise(values)):
        raise ValueError(
            f"analysis.size_bins must be strictly increasing fractions of the image area in (0, 1), "
            f"got {list(edges)!r}."
        )
    return values


def _percent(value: float) -> str:
    return f"{value * 100:g} %"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """One label per bin, e.g. ``['< 0.1 %', '0.1 – 1 %', '1 – 10 %', '≥ 10 %']``."""
    inner = [f"{_percent(a)[:-2]} – {_percent(b)}" for a, b in itertools.pairwise(edges)]
    return [f"< {_percent(edges[0])}", *inner, f"≥ {_percent(edges[-1])}"]


def size_bins(sizes: np.ndarray, image_area: int, edges: Sequence[float]) -> np.ndarray:
    """The bin index of every object: int64 ``(n,)`` in ``[0, len(edges)]``."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), sizes / image_area, side="right").astype(
        np.int64
    )
