"""Adaptive semantic units at inference (docs/mgca.md §4; OUR design, MGCA's algorithm is not public).

MGCA (Fig. 1, Fig. 4) predicts per *semantic unit* instead of per group (under-segments) or per
pixel (over-segments). Ours:

1. **Units** (:func:`semantic_units`): SLIC-style k-means on the pixel embeddings. Seeds on a regular
   grid every ``stride`` pixels; each pixel's distance to a centre is
   ``(1 − cos(e_i, c_k)) + compactness · ‖(y_i, x_i) − (y_k, x_k)‖² / stride²``; ``iters`` rounds of
   assign-then-average (centres: mean embedding re-normalised, mean position). Every pixel belongs to
   exactly one unit (a partition); empty units vanish. Then neighbouring units (4-connected) whose
   mean embeddings have cosine ≥ ``merge_threshold`` are merged (transitively), so a uniform region
   becomes one unit and a busy one keeps many: the number and size of units adapt to the image.
2. **Adaptive prediction** (:func:`unit_scores`): a unit's score is the mean of its pixels' class
   scores, and its label is the argmax of that mean. A unit whose coherence (mean cosine of its
   pixels to its mean embedding) is below ``min_coherence`` mixes things and falls back to per-pixel
   scores, which is the adaptive part: coherent units fix over-segmentation, incoherent ones do not
   force under-segmentation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["merge_units", "semantic_units", "unit_coherence", "unit_scores"]


def _grid_coords(h: int, w: int, device: torch.device) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([ys.flatten(), xs.flatten()], dim=1)  # (N, 2)


@torch.no_grad()
def semantic_units(
    emb: torch.Tensor,
    stride: int,
    iters: int = 5,
    compactness: float = 0.1,
    merge_threshold: float | None = 0.9,
) -> torch.Tensor:
    """Partition of one image into semantic units.

    Args:
        emb: ``(E, h, w)`` pixel embeddings (normalised inside).
        stride: seed spacing in pixels (about ``(h/stride)·(w/stride)`` seeds); its default lives in
            :data:`mrovseg.model.mgca.model.UNIT_DEFAULTS` (2 patches).
        iters: assign/update rounds.
        compactness: weight of the spatial term (0: pure embedding k-means).
        merge_threshold: neighbouring units with mean-embedding cosine ≥ this merge; None: no merging.

    Returns:
        ``(h, w)`` long unit ids, consecutive from 0.
    """
    if emb.ndim != 3:
        raise ValueError(f"Expected embeddings (E, h, w), got {tuple(emb.shape)}.")
    if stride < 1 or iters < 0:
        raise ValueError(f"stride must be ≥ 1 and iters ≥ 0, got {stride}, {iters}.")
    _, h, w = emb.shape
    feats = F.normalize(emb.float().flatten(1).T, dim=-1)  # (N, E)
    pos = _grid_coords(h, w, emb.device)
    sy = torch.arange(stride / 2 - 0.5, h, stride, device=emb.device).clamp(max=h - 1)
    sx = torch.arange(stride / 2 - 0.5, w, stride, device=emb.device).clamp(max=w - 1)
    cpos = torch.cartesian_prod(sy, sx).float()  # (U, 2)
    seed_idx = cpos.round().long()
    centres = feats[seed_idx[:, 0] * w + seed_idx[:, 1]]
    assign = torch.zeros(h * w, dtype=torch.long, device=emb.device)
    for it in range(iters + 1):
        dist = (1 - feats @ centres.T) + compactness * torch.cdist(pos, cpos).square() / stride**2
        assign = dist.argmin(dim=1)
        if it == iters:
            break
        count = torch.bincount(assign, minlength=len(centres)).float()
        alive = count > 0
        sums = torch.zeros_like(centres).index_add_(0, assign, feats)
        psum = torch.zeros_like(cpos).index_add_(0, assign, pos)
        centres = torch.where(alive[:, None], F.normalize(sums, dim=-1), centres)
        cpos = torch.where(alive[:, None], psum / count.clamp(min=1)[:, None], cpos)
    units = torch.unique(assign, return_inverse=True)[1].view(h, w)
    return merge_units(feats, units, merge_threshold) if merge_threshold is not None else units


def merge_units(feats: torch.Tensor, units: torch.Tensor, threshold: float) -> torch.Tensor:
    """Merges 4-neighbouring units whose mean embeddings have cosine ≥ ``threshold`` (transitively).

    Args:
        feats: ``(N, E)`` normalised pixel embeddings (row-major over ``units``).
        units: ``(h, w)`` unit ids, consecutive from 0.
        threshold: cosine similarity above which neighbours merge.

    Returns:
        ``(h, w)`` merged unit ids, consecutive from 0.
    """
    ids = units.flatten()
    n = int(ids.max()) + 1
    mean = F.normalize(torch.zeros(n, feats.shape[1], device=feats.device).index_add_(0, ids, feats), dim=-1)
    pairs = torch.cat(
        [
            torch.stack([units[:, :-1].flatten(), units[:, 1:].flatten()], 1),
            torch.stack([units[:-1].flatten(), units[1:].flatten()], 1),
        ]
    )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]].unique(dim=0)
    if len(pairs) == 0:
        return units
    pairs = pairs[(mean[pairs[:, 0]] * mean[pairs[:, 1]]).sum(-1) >= threshold]
    label = torch.arange(n, device=units.device)
    a, b = pairs[:, 0], pairs[:, 1]
    while True:  # label propagation: every unit takes the smallest label of its merged neighbours
        new = label.clone()
        new.scatter_reduce_(0, a, label[b], reduce="amin")
        new.scatter_reduce_(0, b, label[a], reduce="amin")
        if torch.equal(new, label):
            break
        label = new
    return torch.unique(label[units], return_inverse=True)[1]


def unit_coherence(emb: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """``(U,)`` mean cosine similarity of each unit's pixels to the unit's mean embedding."""
    feats = F.normalize(emb.float().flatten(1).T, dim=-1)
    ids = units.flatten()
    n = int(ids.max()) + 1
    count = torch.bincount(ids, minlength=n).float().clamp(min=1)
    mean = F.normalize(torch.zeros(n, feats.shape[1], device=feats.device).index_add_(0, ids, feats), dim=-1)
    cos = (feats * mean[ids]).sum(-1)
    return torch.zeros(n, device=feats.device).index_add_(0, ids, cos) / count


def unit_scores(
    scores: torch.Tensor, units: torch.Tensor, emb: torch.Tensor | None = None, min_coherence: float = 0.0
) -> torch.Tensor:
    """Per-pixel scores where every pixel of a unit gets the unit's mean score.

    Args:
        scores: ``(K, h, w)`` per-pixel class scores.
        units: ``(h, w)`` unit ids (from :func:`semantic_units`).
        emb: ``(E, h, w)`` embeddings, needed when ``min_coherence > 0``.
        min_coherence: units less coherent than this keep their per-pixel scores.

    Returns:
        ``(K, h, w)`` scores; argmax over a (coherent) unit is the argmax of its mean score.
    """
    k, h, w = scores.shape
    if units.shape != (h, w):
        raise ValueError(f"Units {tuple(units.shape)} do not match scores {tuple(scores.shape)}.")
    ids = units.flatten()
    n = int(ids.max()) + 1
    flat = scores.flatten(1).T  # (N, K)
    count = torch.bincount(ids, minlength=n).to(flat.dtype).clamp(min=1)
    mean = torch.zeros(n, k, device=flat.device, dtype=flat.dtype).index_add_(0, ids, flat) / count[:, None]
    out = mean[ids]
    if min_coherence > 0:
        if emb is None:
            raise ValueError("unit_scores needs the embeddings when min_coherence > 0.")
        keep = unit_coherence(emb, units)[ids] >= min_coherence
        out = torch.where(keep[:, None], out, flat)
    return out.T.reshape(k, h, w)
