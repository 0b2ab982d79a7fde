"""Mining (masked region, noun) training pairs from captions, as OVSeg does with COCO Captions.

OVSeg (arXiv 2210.04150, Sec. 3.2; issue facebookresearch/ov-seg#7) extracts the nouns of an image's
caption and uses CLIP to match them to the image's mask proposals. The mining code is not public;
we pair **each noun with the proposal CLIP prefers** (highest cosine similarity between the noun's
text embedding and the proposal's masked-crop embedding, among that image's non-empty proposals),
optionally dropping pairs below a similarity threshold. Our choice where the paper is silent.
"""

from __future__ import annotations

import torch


def match_nouns(
    region_embeddings: torch.Tensor,
    region_image: torch.Tensor,
    noun_embeddings: torch.Tensor,
    noun_image: torch.Tensor,
    min_similarity: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every noun, the proposal of its own image that CLIP prefers.

    Args:
        region_embeddings: ``(R, E)`` L2-normalised proposal embeddings.
        region_image: ``(R,)`` image index of each proposal.
        noun_embeddings: ``(M, E)`` L2-normalised text embeddings of the nouns.
        noun_image: ``(M,)`` image index of each noun.
        min_similarity: drop pairs whose cosine similarity is below this (None keeps all).

    Returns:
        ``(noun_idx, region_idx)``, both ``(P,)`` long: pair ``j`` is noun ``noun_idx[j]`` with
        proposal ``region_idx[j]``. Nouns of an image without proposals get no pair.
    """
    if len(region_embeddings) == 0 or len(noun_embeddings) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=noun_embeddings.device)
        return empty, empty
    sim = noun_embeddings.float() @ region_embeddings.float().T  # (M, R)
    same = noun_image[:, None] == region_image[None, :]
    sim = sim.masked_fill(~same, float("-inf"))
    best, region_idx = sim.max(dim=1)
    keep = torch.isfinite(best)
    if min_similarity is not None:
        keep &= best >= min_similarity
    noun_idx = keep.nonzero()[:, 0]
    return noun_idx, region_idx[noun_idx]
