"""MGCA-style segmenter: frozen CLIP image/text encoders, a trainable decoder D_v → pixel embeddings.

Pipeline (MGCA Fig. 2; details are OUR design, docs/mgca.md §1)::

    window (n, 3, H, W) ─► frozen CLIP trunk (one pass) ─► patch tokens of ``tap_layers``
                                              └─► MaskCLIP value path of the last block → e⁰ (n, E, h, w)
    D_v: Σ_l Linear(LN(tokens_l)) + Linear(e⁰) → ``depth`` residual 3×3 conv blocks
         → ×``upsample`` (bilinear + conv block) → 1×1 conv to E (zero-initialised)
    pixel embedding p = normalize(up(e⁰) + D_v(...))     (so training starts from MaskCLIP)
    scores = softmax_K(logit_scale · <p, t_k>) → adaptive semantic units (inference)

``semantic_scores`` has the contract of the other models (``(n, K, h, w)`` class scores of windows in
[0, 1]), so the LightningModule's sliding-window evaluation, predict, the demo and the metrics work
unchanged. Training (the MGCA losses) lives in :mod:`mrovseg.training.mgca`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mrovseg.model.clip_backbone import CLIPBackbone, trainable_parameters
from mrovseg.model.mgca.units import semantic_units, unit_scores

log = logging.getLogger(__name__)

#: Options of the adaptive semantic units (docs/mgca.md §4). ``stride`` None: seeds every 2 patches,
#: i.e. ``2 × upsample`` pixels of the pixel grid (MGCA gives no value, Fig. 1/4 only; ours): 8 for the
#: real-scale decoder (×4, ViT-B/16 at 448: 14² seeds on a 112² grid), 4 for the toy one (×2, 8² on 32²).
UNIT_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "stride": None,
    "iters": 5,
    "compactness": 0.1,
    "merge_threshold": 0.9,
    "min_coherence": 0.0,
}


class ConvBlock(nn.Module):
    """Residual ``3×3 conv → GroupNorm → GELU`` block."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, dim), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


class MGCA(nn.Module):
    """Text-supervised open-vocabulary segmenter (MGCA-style).

    Args:
        backbone: the frozen CLIP.
        dim: decoder width.
        depth: residual conv blocks at the patch grid.
        upsample: output stride gain of the decoder (pixel grid = patch grid × upsample).
        tap_layers: CLIP layers whose patch tokens feed the decoder (default: the last two).
        view_size: side windows are resized to before CLIP; None keeps the window's size.
        units: adaptive semantic units at inference: ``enabled`` (False: plain per-pixel), ``stride``
            (None: 2 patches, see :data:`UNIT_DEFAULTS`), ``iters``, ``compactness``, ``merge_threshold``,
            ``min_coherence`` (see :mod:`mrovseg.model.mgca.units`).
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        dim: int = 256,
        depth: int = 2,
        upsample: int = 2,
        tap_layers: Sequence[int] | None = None,
        view_size: int | None = None,
        units: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tap_layers = (
            list(tap_layers) if tap_layers is not None else [max(backbone.depth - 1, 1), backbone.depth]
        )
        if any(not 1 <= t <= backbone.depth for t in self.tap_layers):
            raise ValueError(f"tap_layers {self.tap_layers} must be in [1, {backbone.depth}].")
        if upsample < 1:
            raise ValueError(f"upsample must be ≥ 1, got {upsample}.")
        unknown = set(units or {}) - set(UNIT_DEFAULTS)
        if unknown:
            raise ValueError(f"Unknown units options {sorted(unknown)}; expected {sorted(UNIT_DEFAULTS)}.")
        self.units = {**UNIT_DEFAULTS, **(units or {})}
        if self.units["stride"] is None:
            self.units["stride"] = 2 * upsample
        self.view_size = view_size
        self.upsample = upsample
        width, emb = backbone.width, backbone.embed_dim
        self.token_norms = nn.ModuleList(nn.LayerNorm(width) for _ in self.tap_layers)
        self.token_projs = nn.ModuleList(nn.Linear(width, dim) for _ in self.tap_layers)
        self.clip_proj = nn.Linear(emb, dim)
        self.blocks = nn.Sequential(*[ConvBlock(dim) for _ in range(depth)])
        self.up_block = ConvBlock(dim) if upsample > 1 else nn.Identity()
        self.out = nn.Conv2d(dim, emb, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return trainable_parameters(self)

    @torch.no_grad()
    def clip_features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], tuple[int, int]]:
        """Frozen CLIP: MaskCLIP embeddings ``(n, E, gh, gw)`` (normalised), tapped patch tokens, grid."""
        bb = self.backbone
        x = bb.normalize(images)
        if self.view_size is not None and tuple(x.shape[-2:]) != (self.view_size, self.view_size):
            size = (self.view_size, self.view_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        feats = bb.forward_views(x, tap_layers=sorted({bb.depth - 1, *self.tap_layers}), cls_layer=bb.depth)
        value_path = bb.value_path(feats.layers[bb.depth - 1])  # MaskCLIP's dense path
        gh, gw = feats.grid
        base = F.normalize(bb.head(value_path[:, 1:]).float(), dim=-1)
        base = rearrange(base, "b (h w) e -> b e h w", h=gh, w=gw)
        return base, [feats.layers[t][:, 1:].float() for t in self.tap_layers], (gh, gw)

    def embeddings(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Trained pixel embeddings and the frozen CLIP's, both ``(n, E, h, w)``, L2-normalised."""
        base, tokens, (gh, gw) = self.clip_features(images)
        x = self.clip_proj(rearrange(base, "b e h w -> b (h w) e"))
        for t, norm, proj in zip(tokens, self.token_norms, self.token_projs):
            x = x + proj(norm(t))
        x = self.blocks(rearrange(x, "b (h w) c -> b c h w", h=gh, w=gw))
        size = (gh * self.upsample, gw * self.upsample)
        if self.upsample > 1:
            x = self.up_block(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        base_up = (
            F.interpolate(base, size=size, mode="bilinear", align_corners=False)
            if self.upsample > 1
            else base
        )
        return F.normalize(base_up + self.out(x), dim=1), F.normalize(base_up, dim=1)

    def pixel_scores(self, emb: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Per-pixel class probabilities ``(n, K, h, w)`` from embeddings."""
        logits = torch.einsum("behw,ke->bkhw", emb, text_embeddings.to(emb.dtype)) * self.backbone.logit_scale
        return logits.softmax(dim=1)

    @torch.no_grad()
    def semantic_scores(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Class scores ``(n, K, h, w)`` of windows, through adaptive semantic units if enabled."""
        emb, _ = self.embeddings(images)
        scores = self.pixel_scores(emb, text_embeddings)
        u = self.units
        if not u["enabled"]:
            return scores
        out = []
        for e, s in zip(emb, scores):
            merge = None if u["merge_threshold"] is None else float(u["merge_threshold"])
            ids = semantic_units(e, int(u["stride"]), int(u["iters"]), float(u["compactness"]), merge)
            out.append(unit_scores(s, ids, e, float(u["min_coherence"])))
        return torch.stack(out)

    def forward(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> dict[str, Any]:
        return {"scores": self.semantic_scores(images, text_embeddings)}
