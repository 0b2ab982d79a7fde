"""PAMR: pixel-adaptive mask refinement, bounded in memory (chunks of classes, one neighbour at a time).

PAMR (Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels", CVPR 2020) refines class
score maps with the image's local affinities; SCLIP and NACLIP apply it to the merged query cosines (NACLIP
by default: 10 steps, dilations 8 and 16; ``../shared/papers/training-free-facts.md`` §3). The algorithm,
as their ``pamr.py`` runs it:

* neighbours: for each dilation ``δ`` the 8 pixels at ``δ·(±1, ±1 / 0)``, borders replicated, so
  ``P = 8 · len(dilations)`` neighbours per pixel (16 for (8, 16));
* affinity of pixel ``i`` to its neighbour ``j``, per image channel ``c``:
  ``−|I_c(i) − I_c(j)| / (1e-8 + 0.1 · σ_c(i))``, where ``σ_c(i)`` is the (unbiased) standard deviation of
  ``I_c`` over the 9 positions (centre included) of every dilation — 18 values for (8, 16); averaged over
  channels, then a softmax over the ``P`` neighbours gives the weights ``w_ij``;
* each step: ``m_k(i) ← Σ_j w_ij · m_k(j)`` for every class ``k``.

The reference builds a ``(K, P, H, W)`` tensor per step and a second one for the product (≈3.4 GB each
for ADE's 150 classes at 512×683, facts §3). Here the weights ``(P, H, W)`` are computed once, one
neighbour at a time, classes are processed in chunks of at most ``chunk_bytes`` per map, and each step
accumulates the ``P`` neighbours one at a time: beyond the ``(K, H, W)`` input (overwritten with the
result) memory is the weights and about three chunk maps, whatever ``K`` is. The result equals the reference up to float rounding
(``tests/model/test_training_free.py``).
Cost: BENCHMARKS.md, "Training-free CLIP" (``scripts/bench_pamr.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: The 8 neighbour offsets of one dilation, in (row, column) steps.
OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
#: Default bytes of one chunk map ``(chunk, H, W)`` float32.
CHUNK_BYTES = 32 * 2**20


def shifted(x: torch.Tensor, dilation: int, centre: bool = False) -> list[torch.Tensor]:
    """The 8 neighbours (9 positions with ``centre``) of every pixel of ``x`` ``(C, H, W)`` at a dilation,
    borders replicated: a list of ``(C, H, W)`` views into one padded copy."""
    h, w = x.shape[-2:]
    d = int(dilation)
    padded = F.pad(x[None], (d, d, d, d), mode="replicate")[0]
    offsets = sorted((*OFFSETS, (0, 0))) if centre else OFFSETS
    return [padded[:, d + dy * d : d + dy * d + h, d + dx * d : d + dx * d + w] for dy, dx in offsets]


def pamr_weights(image: torch.Tensor, dilations: Sequence[int]) -> torch.Tensor:
    """The neighbour weights ``(P, H, W)`` of an image ``(C, H, W)`` (each pixel's sum to 1 over ``P``),
    built one neighbour at a time: a few ``(C, H, W)`` maps besides the result."""
    img = image.float()
    count = 9 * len(dilations)
    mean = sum(v for d in dilations for v in shifted(img, d, centre=True)) / count
    var = sum((v - mean).pow_(2) for d in dilations for v in shifted(img, d, centre=True)) / (count - 1)
    denominator = var.sqrt_().mul_(0.1).add_(1e-8)  # 1e-8 + 0.1 · σ_c(i), σ unbiased as torch.std
    affinity = [
        (img - n).abs_().div_(denominator).mean(dim=0).neg_() for d in dilations for n in shifted(img, d)
    ]
    return torch.stack(affinity).softmax(dim=0)


def pamr(
    image: torch.Tensor,
    scores: torch.Tensor,
    steps: int = 10,
    dilations: Sequence[int] = (8, 16),
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """Refines score maps ``(K, H, W)`` with an image ``(C, H, W)`` of the same size; returns ``scores``
    (float32, overwritten in place when it already is)."""
    if image.shape[-2:] != scores.shape[-2:]:
        raise ValueError(
            f"PAMR needs the image at the scores' size, got {tuple(image.shape)} and {tuple(scores.shape)}."
        )
    scores = scores.float()
    if steps <= 0:
        return scores
    weights = pamr_weights(image, dilations)
    k, h, w = scores.shape
    chunk = max(1, int(chunk_bytes) // (4 * h * w))
    for start in range(0, k, chunk):
        m = scores[start : start + chunk]
        for _ in range(steps):
            acc = torch.zeros_like(m)
            neighbours = (n for d in dilations for n in shifted(m, d))
            for weight, neighbour in zip(weights, neighbours):
                acc.addcmul_(neighbour, weight)
            m = acc
        scores[start : start + chunk] = m
    return scores
