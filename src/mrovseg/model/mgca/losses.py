"""MGCA-style multi-grained alignment on the pixel-to-text similarity matrix (docs/mgca.md §3).

MGCA's method section is not available here (``shared/papers/mgca-method-facts.md``): the formulas
below are OUR design in the spirit of its Fig. 3 ("based on the pixel-to-text similarity matrix
S_ij, we identify informative positive and negative pairs for object-, region- and pixel-level
contrastive learning"). Notation (a batch of B images, M nouns taken from their captions):

* ``S[b, m, i] = <p_{b,i}, t_m>``: cosine similarity of pixel ``i`` of image ``b`` and noun ``m``
  (Eq. 1 of docs/mgca.md); ``owner[m]`` is the image whose caption gave noun ``m``;
  ``same[m, m']`` is True when the two nouns are the same phrase (never a negative pair).
* Pseudo correspondence (Eq. 2): pixel ``i`` of image ``b`` belongs to
  ``a(b, i) = argmax_{m : owner[m] = b} S[b, m, i]``, with margin ``top1 − top2`` (+inf with one noun).
* Every loss is InfoNCE with temperature τ (Eq. 3):
  ``ℓ(pos, negs) = −log exp(pos/τ) / (exp(pos/τ) + Σ_{n ∈ hardest k of negs} exp(n/τ))``.

Levels:

* **object** (Eq. 4): image ``b``'s score for noun ``m`` is ``max_i S[b, m, i]`` (the object's best
  pixel). Anchor: noun ``m``; positive: its own image; negatives: the ``k_obj`` hardest other images
  whose captions do not contain the same phrase.
* **region** (Eq. 5): the pseudo region ``R_m = {i : a(owner[m], i) = m}``; its score for noun
  ``m'`` is the mean of ``S[owner[m], m', i]`` over ``R_m`` (mean-pooled pixel embedding · text).
  Anchor: region ``R_m``; positive: noun ``m``; negatives: the ``k_reg`` hardest nouns of other phrases
  in the batch. Empty regions are skipped.
* **pixel** (Eq. 6): for each noun ``m``, among the pixels of ``R_m`` whose margin is ≥ ``min_margin``,
  the ``k_pos`` with the LOWEST ``S[owner[m], m, i]`` (hard positives). Anchor: that pixel; positive:
  noun ``m``; negatives: the ``k_pix`` hardest nouns of other phrases in the batch.

Selections (pseudo labels, hardest pairs) carry no gradient; the loss values do.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MGCALoss",
    "hardest",
    "info_nce",
    "object_loss",
    "pixel_loss",
    "pseudo_assign",
    "region_loss",
    "same_phrase",
    "similarity",
]


def similarity(pixels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """``S`` (Eq. 1): L2-normalised pixel embeddings ``(B, E, h, w)`` · text ``(M, E)`` → ``(B, M, h·w)``."""
    return torch.einsum("ben,me->bmn", pixels.flatten(2), text.to(pixels.dtype))


def same_phrase(nouns: list[str]) -> torch.Tensor:
    """``(M, M)`` bool: True where two nouns are the same phrase (case- and space-insensitive)."""
    keys = [" ".join(n.lower().split()) for n in nouns]
    ids = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    t = torch.tensor([ids[k] for k in keys])
    return t[:, None] == t[None, :]


def _own(owner: torch.Tensor, num_images: int) -> torch.Tensor:
    """``(B, M)`` bool: noun ``m`` comes from image ``b``."""
    return torch.arange(num_images, device=owner.device)[:, None] == owner[None, :]


@torch.no_grad()
def pseudo_assign(sim: torch.Tensor, owner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo correspondence (Eq. 2): each pixel's best noun among its own caption's.

    Args:
        sim: ``(B, M, N)`` similarities.
        owner: ``(M,)`` image index of each noun.

    Returns:
        ``assign (B, N)`` global noun index (−1 for an image without nouns) and ``margin (B, N)``
        top-1 minus top-2 similarity among the image's nouns (+inf with one noun, −inf with none).
    """
    b = sim.shape[0]
    own = _own(owner, b)
    masked = sim.float().masked_fill(~own[:, :, None], float("-inf"))
    k = min(2, sim.shape[1])
    if k == 0:
        n = sim.shape[2]
        return torch.full((b, n), -1, dtype=torch.long), torch.full((b, n), float("-inf"))
    top = masked.topk(k, dim=1)
    assign = torch.where(own.any(1)[:, None], top.indices[:, 0], torch.full_like(top.indices[:, 0], -1))
    if k == 1:
        margin = torch.full_like(top.values[:, 0], float("inf"))
    else:
        second = top.values[:, 1]
        margin = torch.where(
            torch.isfinite(second), top.values[:, 0] - second, torch.full_like(second, float("inf"))
        )
    margin = torch.where(assign >= 0, margin, torch.full_like(margin, float("-inf")))
    return assign, margin


@torch.no_grad()
def hardest(scores: torch.Tensor, valid: torch.Tensor, k: int | None) -> torch.Tensor:
    """Bool mask of the ``k`` highest ``scores`` among ``valid`` entries along the last dim (all if k is None)."""
    if k is None or k >= scores.shape[-1]:
        return valid.clone()
    if k <= 0:
        return torch.zeros_like(valid)
    s = scores.float().masked_fill(~valid, float("-inf"))
    idx = s.topk(k, dim=-1).indices
    picked = torch.zeros_like(valid).scatter_(-1, idx, True)
    return picked & valid


def info_nce(pos: torch.Tensor, neg: torch.Tensor, neg_mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean InfoNCE (Eq. 3) of anchors with one positive ``(P,)`` and masked negatives ``(P, C)``; 0 if P = 0."""
    if pos.numel() == 0:
        return pos.sum() * 0.0
    logits = torch.cat([pos[:, None], neg.masked_fill(~neg_mask, float("-inf"))], dim=1).float() / tau
    return -F.log_softmax(logits, dim=1)[:, 0].mean()


def object_loss(
    sim: torch.Tensor, owner: torch.Tensor, same: torch.Tensor, tau: float, k_neg: int | None
) -> torch.Tensor:
    """Object-level loss (Eq. 4): noun → its image against the hardest other images."""
    b, m, _ = sim.shape
    score = sim.amax(dim=-1)  # (B, M): image b's best pixel for noun m
    own = _own(owner, b)
    contains = (same.float() @ own.float().T) > 0  # (M, B): image b' mentions noun m's phrase
    pos = score[owner, torch.arange(m, device=sim.device)]
    neg = score.T
    return info_nce(pos, neg, hardest(neg.detach(), ~contains, k_neg), tau)


def region_scores(
    sim: torch.Tensor, owner: torch.Tensor, assign: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, M)`` mean similarity of each pseudo region ``R_m`` to every noun, and ``(M,)`` region sizes."""
    m = sim.shape[1]
    regions = (assign[owner] == torch.arange(m, device=sim.device)[:, None]).to(sim.dtype)  # (M, N)
    size = regions.sum(-1)
    total = torch.einsum("mn,mkn->mk", regions, sim[owner])
    return total / size.clamp(min=1)[:, None], size


def region_loss(
    sim: torch.Tensor,
    owner: torch.Tensor,
    same: torch.Tensor,
    assign: torch.Tensor,
    tau: float,
    k_neg: int | None,
) -> torch.Tensor:
    """Region-level loss (Eq. 5): pseudo region → its noun against the hardest other nouns."""
    scores, size = region_scores(sim, owner, assign)
    idx = (size > 0).nonzero()[:, 0]
    pos, neg = scores[idx, idx], scores[idx]
    return info_nce(pos, neg, hardest(neg.detach(), ~same[idx], k_neg), tau)


@torch.no_grad()
def hard_positive_pixels(
    sim: torch.Tensor,
    owner: torch.Tensor,
    assign: torch.Tensor,
    margin: torch.Tensor,
    k_pos: int | None,
    min_margin: float,
) -> torch.Tensor:
    """``(M, N)`` bool: for each noun, the ``k_pos`` least similar confident pixels of its pseudo region."""
    m = sim.shape[1]
    ar = torch.arange(m, device=sim.device)
    cand = (assign[owner] == ar[:, None]) & (margin[owner] >= min_margin)
    return hardest(-sim[owner, ar], cand, k_pos)


def pixel_loss(
    sim: torch.Tensor,
    owner: torch.Tensor,
    same: torch.Tensor,
    assign: torch.Tensor,
    margin: torch.Tensor,
    tau: float,
    k_pos: int | None,
    k_neg: int | None,
    min_margin: float,
) -> torch.Tensor:
    """Pixel-level loss (Eq. 6): hard-positive pixels → their noun against the hardest other nouns."""
    sel = hard_positive_pixels(sim.detach(), owner, assign, margin, k_pos, min_margin)
    noun, pix = sel.nonzero(as_tuple=True)
    img = owner[noun]
    pos = sim[img, noun, pix]
    neg = sim[img, :, pix]  # (P, M)
    return info_nce(pos, neg, hardest(neg.detach(), ~same[noun], k_neg), tau)


class MGCALoss(nn.Module):
    """The three alignment levels, each a switch (MGCA's "grained" ablation), weighted and summed.

    Args:
        object_level: use the object-level loss.
        region_level: use the region-level loss.
        pixel_level: use the pixel-level loss.
        weights: loss weights ``{"object": 1, "region": 1, "pixel": 1}``.
        temperature: τ of every InfoNCE.
        k_obj: hardest negative images per noun (None: all).
        k_reg: hardest negative nouns per region (None: all).
        k_pos: hard-positive pixels per noun.
        k_pix: hardest negative nouns per pixel (None: all).
        min_margin: pixels whose pseudo label wins by less than this are not positives.
        pseudo_source: ``"model"`` (pseudo labels from the trained embeddings, detached) or
            ``"clip"`` (from the frozen CLIP's dense embeddings).
    """

    def __init__(
        self,
        object_level: bool = True,
        region_level: bool = True,
        pixel_level: bool = True,
        weights: Mapping[str, float] | None = None,
        temperature: float = 0.07,
        k_obj: int | None = 4,
        k_reg: int | None = 8,
        k_pos: int | None = 16,
        k_pix: int | None = 8,
        min_margin: float = 0.0,
        pseudo_source: str = "model",
    ) -> None:
        super().__init__()
        if pseudo_source not in ("model", "clip"):
            raise ValueError(f"pseudo_source must be 'model' or 'clip', got {pseudo_source!r}.")
        if not (object_level or region_level or pixel_level):
            raise ValueError("At least one alignment level (object, region, pixel) must be on.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.levels = {"object": object_level, "region": region_level, "pixel": pixel_level}
        self.weights = {"object": 1.0, "region": 1.0, "pixel": 1.0, **(weights or {})}
        self.tau, self.k_obj, self.k_reg, self.k_pos, self.k_pix = temperature, k_obj, k_reg, k_pos, k_pix
        self.min_margin, self.pseudo_source = min_margin, pseudo_source

    def forward(
        self,
        sim: torch.Tensor,
        owner: torch.Tensor,
        same: torch.Tensor,
        pseudo_sim: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Loss terms ``loss_object``, ``loss_region``, ``loss_pixel`` (those switched on) and ``loss``.

        Args:
            sim: ``(B, M, N)`` similarities of the trained pixel embeddings (with gradient).
            owner: ``(M,)`` image of each noun.
            same: ``(M, M)`` same-phrase mask.
            pseudo_sim: similarities the pseudo labels come from when ``pseudo_source="clip"``.
        """
        source = pseudo_sim if self.pseudo_source == "clip" and pseudo_sim is not None else sim
        assign, margin = pseudo_assign(source.detach(), owner)
        out: dict[str, torch.Tensor] = {}
        if self.levels["object"]:
            out["loss_object"] = object_loss(sim, owner, same, self.tau, self.k_obj)
        if self.levels["region"]:
            out["loss_region"] = region_loss(sim, owner, same, assign, self.tau, self.k_reg)
        if self.levels["pixel"]:
            out["loss_pixel"] = pixel_loss(
                sim, owner, same, assign, margin, self.tau, self.k_pos, self.k_pix, self.min_margin
            )
        out["loss"] = sum(self.weights[k.removeprefix("loss_")] * v for k, v in out.items())
        return out
