"""What one pass of :class:`~mrovseg.model.clip_backbone.CLIPBackbone`'s vision trunk returns (kept apart
from the backbone for length; ``mrovseg.model.clip_backbone`` re-exports it)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ViewFeatures:
    """What one trunk pass over a batch of views returns.

    Attributes:
        layers: hidden state after layer ``l`` (0 = stem, after ``ln_pre``) for each tapped ``l``;
            each ``(N, 1 + gh*gw, D)`` with [CLS] first.
        kv: for each classification block (in order), that block's ``(k, v)`` computed from the
            block's LayerNorm'ed input, each ``(N, heads, 1 + gh*gw, head_dim)``.
        grid: the patch grid ``(gh, gw)`` of the views.
    """

    layers: dict[int, torch.Tensor]
    kv: list[tuple[torch.Tensor, torch.Tensor]]
    grid: tuple[int, int]
