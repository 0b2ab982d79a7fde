"""The query proposals of a mask-based model (MROVSeg, OVSeg) as disjoint segments of a whole image.

For the oracle "model's proposals, ground-truth classes" (:mod:`mrovseg.analysis.oracle`) each proposal
is labelled by its majority ground-truth class. Proposals are soft and overlap, and an image is scored
by overlapping sliding windows, so two rules make them segments (ours, stated in
``docs/error-analysis.md``):

* inside a window, a pixel belongs to the query with the largest ``max_k p_qk · sigmoid(M_q)``: its class
  confidence times its mask probability, Mask2Former's panoptic assignment (facebookresearch/Mask2Former,
  ``panoptic_inference``) without its thresholds — every pixel belongs to some proposal;
* where windows overlap, a pixel takes the proposal of the window whose centre is nearest (ties: the
  first window in scan order), so each proposal is one query of one window.

This costs one more forward pass per window; the model's own prediction is not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mrovseg.analysis.components import Segments
from mrovseg.model.inference import window_starts


def query_assignment(out: Any) -> torch.Tensor | None:
    """``(n, h, w)`` index of the owning query per pixel of each window from a model's forward output
    (``pred_logits (n, Q, K+1)`` with a last "no object" class, or ``pred_probs (n, Q, K)``, and
    ``pred_masks (n, Q, h, w)`` logits); None when the output has no mask proposals."""
    if not isinstance(out, dict) or "pred_masks" not in out:
        return None
    if "pred_probs" in out:  # OVSeg: its ensembled class probabilities
        probs = out["pred_probs"].float()
    elif "pred_logits" in out:
        probs = out["pred_logits"].float().softmax(dim=-1)[..., :-1]
    else:
        return None
    confidence = probs.max(dim=-1).values  # (n, Q)
    weight = confidence[:, :, None, None] * out["pred_masks"].float().sigmoid()
    return weight.argmax(dim=1)


@torch.no_grad()
def proposal_ids(
    forward: Callable[[torch.Tensor], Any],
    image: torch.Tensor,
    window: int,
    overlap: float = 1 / 3,
    window_batch: int = 4,
) -> torch.Tensor | None:
    """int64 ``(H, W)`` proposal index per pixel (``window index · Q + query``) of one image ``(3, H, W)``,
    over the same windows as :func:`~mrovseg.model.inference.sliding_window`; None for a model whose
    ``forward(windows)`` has no mask proposals."""
    _, h, w = image.shape
    ph, pw = max(h, window), max(w, window)
    if (ph, pw) != (h, w):
        image = F.pad(image, (0, pw - w, 0, ph - h), value=0.0)
    stride = max(1, int(window * (1 - overlap)))
    boxes = [(y, x) for y in window_starts(ph, window, stride) for x in window_starts(pw, window, stride)]
    ids = torch.zeros(ph, pw, dtype=torch.long, device=image.device)
    best = torch.full((ph, pw), float("inf"), device=image.device)
    centre = (torch.arange(window, device=image.device, dtype=torch.float32) - (window - 1) / 2) ** 2
    distance = centre[:, None] + centre[None, :]  # squared distance to the window's centre
    for start in range(0, len(boxes), window_batch):
        chunk = boxes[start : start + window_batch]
        crops = torch.stack([image[:, y : y + window, x : x + window] for y, x in chunk])
        out = forward(crops)
        owner = query_assignment(out)
        if owner is None:
            return None
        num_queries = out["pred_masks"].shape[1]
        if owner.shape[-2:] != (window, window):
            owner = F.interpolate(owner[:, None].float(), size=(window, window), mode="nearest")[:, 0].long()
        for offset, ((y, x), q) in enumerate(zip(chunk, owner)):
            here = best[y : y + window, x : x + window]
            closer = distance < here  # strictly nearer: ties keep the earlier window
            ids[y : y + window, x : x + window][closer] = (start + offset) * num_queries + q[closer]
            here[closer] = distance[closer]
    return ids[:h, :w]


def segments_from_ids(ids: np.ndarray) -> Segments:
    """:class:`Segments` numbered 1..n from an id map whose distinct values are the segments (classes
    -1: a proposal has no class of its own)."""
    unique, inverse = np.unique(ids, return_inverse=True)
    numbered = inverse.reshape(ids.shape).astype(np.int64) + 1
    sizes = np.bincount(numbered.ravel(), minlength=len(unique) + 1)[1:].astype(np.int64)
    return Segments(ids=numbered, classes=np.full(len(unique), -1, dtype=np.int64), sizes=sizes)
