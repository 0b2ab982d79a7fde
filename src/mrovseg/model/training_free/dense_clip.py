"""Training-free baseline: dense per-patch labelling with CLIP's value path (MaskCLIP-style).

MaskCLIP (Zhou, Loy, Dai, ECCV 2022) labels every patch with frozen CLIP by replacing the last
block's attention with its value path: ``x_patch = out_proj(v(ln_1(x)))``, then CLIP's
``ln_post`` and ``proj``; cosine similarity with the text embeddings, times CLIP's logit scale,
softmax over the vocabulary. No parameter is trained, so the same evaluation (vocabulary, sliding
windows, metrics) gives the reference every trained model must beat.

``residual=True`` keeps the block's residual and MLP around the value path (a common variant).
``view_size`` resizes each window before CLIP (None: the window at its own resolution, with the
positional embedding interpolated).

It takes only its own options: an experiment that sets another model's (MROVSeg's ``slice_ratio``,
``adapter``, …) does not compose with it; ``experiment=dense_clip_toy`` is the toy world's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mrovseg.model.clip_backbone import CLIPBackbone


class DenseCLIP(nn.Module):
    """Per-patch CLIP classifier (no trainable parameters).

    Args:
        backbone: the frozen CLIP.
        view_size: side each window is resized to before CLIP; None keeps the window's size.
        residual: keep the last block's residual and MLP around the value path.
    """

    def __init__(self, backbone: CLIPBackbone, view_size: int | None = None, residual: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.view_size = view_size
        self.residual = residual

    def trainable_parameters(self) -> list[nn.Parameter]:
        return []

    @torch.no_grad()
    def patch_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] → L2-normalised patch embeddings ``(B, E, gh, gw)``."""
        bb = self.backbone
        x = bb.normalize(images)
        if self.view_size is not None and tuple(x.shape[-2:]) != (self.view_size, self.view_size):
            size = (self.view_size, self.view_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        feats = bb.forward_views(x, tap_layers=[bb.depth - 1], cls_layer=bb.depth)
        y = bb.value_path(feats.layers[bb.depth - 1], residual=self.residual)
        emb = F.normalize(bb.head(y[:, 1:]).float(), dim=-1)
        gh, gw = feats.grid
        return rearrange(emb, "b (h w) e -> b e h w", h=gh, w=gw)

    def semantic_scores(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, K, gh, gw)`` per patch."""
        emb = self.patch_embeddings(images)
        logits = torch.einsum("behw,ke->bkhw", emb, text_embeddings.float()) * self.backbone.logit_scale
        return logits.softmax(dim=1)

    def forward(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> dict[str, Any]:
        return {"scores": self.semantic_scores(images, text_embeddings)}
