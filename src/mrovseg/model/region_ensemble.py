"""CLIP on every predicted mask, ensembled with the mask classifier's own scores (OVSeg's inference).

OVSeg (Liang et al., CVPR 2023; ``../shared/papers/ovseg-method-facts.md`` §7) classifies each binarised
proposal by running CLIP's image tower on the proposal's blank-filled crop and combines the two class
distributions geometrically::

    p = p_mf^(1−λ) · p_clip^λ        p_mf: the mask classifier's softmax without no-object
                                      p_clip: CLIP's softmax over the K names on the region crop
                                      empty proposals: p_clip = 1

OVSeg needs this to be open-vocabulary at all; FC-CLIP and ODISE use the same geometric ensemble with a
frozen CLIP. :class:`~mrovseg.model.ovseg.OVSeg` runs it with its mask-prompt-tuned CLIP;
MROVSeg can run it **at evaluation only** with the frozen CLIP it already has (``model.region_ensemble=λ``,
prompts off) — an extension, not in the MROVSeg paper: the region scores depend on the predicted masks but
not on any trained classification weight, so they pull every training seed towards one answer for classes
the trained part confuses (BENCHMARKS.md measures what it does to the toy lab's spread).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

_EPS = 1e-30


def ensemble_probs(
    p_mf: torch.Tensor, p_clip: torch.Tensor, valid: torch.Tensor, weight: float
) -> torch.Tensor:
    """OVSeg's ensemble ``(…, K)``: ``p_mf^(1−λ) · p_clip^λ``, with ``p_clip = 1`` for empty proposals.

    Args:
        p_mf: ``(…, K)`` in-vocabulary probabilities (no-object dropped after the softmax).
        p_clip: ``(…, K)`` CLIP probabilities (ignored where not ``valid``).
        valid: ``(…)`` bool, proposals with a non-empty mask.
        weight: λ; 0 = CLIP alone with empty proposals dropped (their probabilities are 0).
    """
    if weight > 0:
        return p_mf.pow(1 - weight) * torch.where(valid[..., None], p_clip, torch.ones_like(p_clip)).pow(
            weight
        )
    return torch.where(valid[..., None], p_clip, torch.zeros_like(p_clip))


def binary_masks(pred_masks: torch.Tensor, size: tuple[int, int], threshold: float) -> torch.Tensor:
    """``(B, N, h, w)`` mask logits → ``(B, N, H, W)`` bool (bilinear upsampling, sigmoid > threshold)."""
    up = F.interpolate(pred_masks.float(), size=size, mode="bilinear", align_corners=False)
    return up.sigmoid() > threshold


def region_probs(
    images: torch.Tensor,
    pred_masks: torch.Tensor,
    threshold: float,
    region_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP's class probabilities of every proposal's region.

    Args:
        images: ``(B, 3, H, W)`` in [0, 1].
        pred_masks: ``(B, N, h, w)`` mask logits.
        threshold: binarisation threshold of the masks' sigmoid (OVSeg's ``MASK_THR``).
        region_logits: maps non-empty region masks ``(R, H, W)`` bool and their image index ``(R,)`` to
            CLIP logits ``(R, K)``.

    Returns:
        ``p_clip (B, N, K)`` (1 for empty proposals) and ``valid (B, N)`` bool (non-empty proposals).
    """
    b, n = pred_masks.shape[:2]
    binary = binary_masks(pred_masks, tuple(images.shape[-2:]), threshold).flatten(0, 1)
    valid = binary.flatten(1).any(dim=1)
    idx = valid.nonzero()[:, 0]
    p_clip: torch.Tensor | None = None
    if len(idx):
        logits = region_logits(binary[idx], idx // n).float()  # float32 under bf16 autocast too
        p_clip = logits.new_ones(b * n, logits.shape[-1])
        p_clip[idx] = logits.softmax(dim=-1)
    return p_clip, valid.view(b, n)


def probs_to_logits(p: torch.Tensor) -> torch.Tensor:
    """``(…, K)`` scores → ``(…, K+1)`` logits whose softmax without the last column is ``p / max(1, Σp)``.

    Exact (``p`` itself) when ``Σp ≤ 1``, which Hölder's inequality guarantees for every non-empty
    proposal; only an empty proposal (``p = p_mf^(1−λ)``) can exceed 1 and is then rescaled.
    """
    p = p / p.sum(dim=-1, keepdim=True).clamp_min(1.0)
    void = (1 - p.sum(dim=-1, keepdim=True)).clamp_min(_EPS)
    return torch.cat([p.clamp_min(_EPS).log(), void.log()], dim=-1)


def ensembled(
    images: torch.Tensor,
    pred_logits: torch.Tensor,
    pred_masks: torch.Tensor,
    weight: float,
    threshold: float,
    region_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ensembled probabilities ``(B, N, K)`` of a mask classifier's output, and ``valid (B, N)``."""
    p_mf = pred_logits.float().softmax(dim=-1)[..., :-1]
    b, n, k = p_mf.shape
    p_clip, valid = region_probs(images, pred_masks, threshold, region_logits)
    if p_clip is None:  # no proposal has a pixel: nothing for CLIP to look at
        p_clip = p_mf.new_ones(b * n, k)
    return ensemble_probs(p_mf, p_clip.view(b, n, k), valid, weight), valid
