"""Multi-Res Adapter with Multi-Res Fusion (MRF) — MROVSeg Sec. 3.4, Eq. 2-3, Fig. 3, Table 4.

The adapter is a small ViT over ``[learnable queries ; restored stem slice tokens]``. Before some
of its blocks, the fused multi-resolution CLIP feature ``F^l`` of a tapped CLIP layer ``l`` is
added to the visual tokens (Eq. 2):

    F^l = Up(a_l) ⊙ DConv(H^l) + Up((1 − a_l) ⊙ H̄^l),   a_l = σ(f_A(H^l)) ∈ [0,1]^{h×w×D}

with ``H^l`` the restored high-resolution grid and ``H̄^l`` the global (low-resolution) grid.
``Up`` resizes a low-resolution map to the high-resolution grid, so ``F^l`` lives on the
high-resolution grid, where the visual tokens are. ``f_A`` average-pools ``H^l`` to the global
grid and applies a 1×1 projection (our choice; the paper cites scale-aware attention [5]).

Ablation switches (Table 4): ``spatial_fusion`` ∈ {dconv, concat} — depthwise-separable conv on
the restored grid vs. restored (concatenated) slice tokens with a pointwise projection only;
``multires_fusion`` ∈ {scale_attention, add, concat, none} — Eq. 2, ``DConv(H) + Up(H̄)``,
``Linear(cat(DConv(H), Up(H̄)))``, or the high-res feature alone (Table 2's plain-feature
baseline); ``depth``; ``fusion_layers``; ``dim``; ``num_queries``. Fused features are injected
before block ``floor(i · depth / n_fusion)`` for the i-th fusion layer.

Memory switch (no effect on results): ``checkpoint=True`` recomputes each adapter block's
activations in the backward pass instead of keeping them (``torch.utils.checkpoint``, non-reentrant),
trading about one extra block forward per step for the blocks' activation memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute

from mrovseg.model.layers import MLP, Block, LayerNorm2d

SPATIAL_FUSIONS = ("dconv", "concat")
MULTIRES_FUSIONS = ("scale_attention", "add", "concat", "none")


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return (
        x
        if tuple(x.shape[-2:]) == tuple(size)
        else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    )


class MultiResFusion(nn.Module):
    """MRF (Eq. 2): fuses one CLIP layer's high-res grid with its global grid.

    Args:
        clip_dim: CLIP width.
        dim: adapter width.
        spatial_fusion: ``dconv`` or ``concat`` (see module docstring).
        multires_fusion: ``scale_attention``, ``add``, ``concat`` or ``none``.
    """

    def __init__(
        self, clip_dim: int, dim: int, spatial_fusion: str = "dconv", multires_fusion: str = "scale_attention"
    ):
        super().__init__()
        if spatial_fusion not in SPATIAL_FUSIONS:
            raise ValueError(f"spatial_fusion must be one of {SPATIAL_FUSIONS}, got {spatial_fusion!r}.")
        if multires_fusion not in MULTIRES_FUSIONS:
            raise ValueError(f"multires_fusion must be one of {MULTIRES_FUSIONS}, got {multires_fusion!r}.")
        self.multires_fusion = multires_fusion
        self.proj_hr = nn.Sequential(LayerNorm2d(clip_dim), nn.Conv2d(clip_dim, dim, 1))
        if spatial_fusion == "dconv":  # depthwise 3×3 then pointwise 1×1
            self.spatial = nn.Sequential(
                nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.Conv2d(dim, dim, 1)
            )
        else:
            self.spatial = nn.Conv2d(dim, dim, 1)
        if multires_fusion != "none":
            self.proj_lr = nn.Sequential(LayerNorm2d(clip_dim), nn.Conv2d(clip_dim, dim, 1))
        if multires_fusion == "scale_attention":
            self.f_a = nn.Conv2d(dim, dim, 1)
        elif multires_fusion == "concat":
            self.merge = nn.Conv2d(2 * dim, dim, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The gate ``f_a`` starts at zero: a = 0.5 at start, both resolutions weigh equally."""
        if self.multires_fusion == "scale_attention":
            nn.init.zeros_(self.f_a.weight)
            nn.init.zeros_(self.f_a.bias)

    def forward(self, high_res: torch.Tensor, low_res: torch.Tensor) -> torch.Tensor:
        """``high_res`` ``(B, Dc, Gh, Gw)``, ``low_res`` ``(B, Dc, gh, gw)`` → ``F`` ``(B, dim, Gh, Gw)``."""
        size = high_res.shape[-2:]
        h = self.proj_hr(high_res)
        detail = self.spatial(h)
        if self.multires_fusion == "none":
            return detail
        g = self.proj_lr(low_res)
        if self.multires_fusion == "add":
            return detail + _up(g, size)
        if self.multires_fusion == "concat":
            return self.merge(torch.cat([detail, _up(g, size)], dim=1))
        a = torch.sigmoid(self.f_a(F.adaptive_avg_pool2d(h, g.shape[-2:])))  # (B, dim, gh, gw)
        return _up(a, size) * detail + _up((1 - a) * g, size)


@dataclass
class AdapterOutput:
    """Attributes:
    visual: final visual tokens ``H`` on the high-res grid, ``(B, dim, Gh, Gw)``.
    query_features: ``Q_f = MLP^Q(Q)`` after each block (last = final), each ``(B, N, mask_dim)``.
    fused: ``F^l`` for each fusion layer, each ``(B, dim, Gh, Gw)``.
    """

    visual: torch.Tensor
    query_features: list[torch.Tensor]
    fused: list[torch.Tensor]


class MultiResAdapter(nn.Module):
    """Learnable queries + vanilla ViT blocks over restored stem tokens, with MRF injections.

    Args:
        clip_dim: CLIP width (768 for ViT-B/16, 1024 for ViT-L/14).
        dim: adapter width (768 in the paper).
        depth: number of ViT blocks (6).
        num_heads: attention heads (12).
        num_queries: learnable queries N (100).
        fusion_layers: CLIP layers fused by MRF (0 = stem); paper: {0, 3, 6, 9, 12} for ViT-B.
        mask_dim: width of the query features ``Q_f`` (Eq. 3) and of the pixel features.
        spatial_fusion: see ``MultiResFusion``.
        multires_fusion: see ``MultiResFusion``.
        mlp_ratio: ViT block MLP ratio.
        checkpoint: recompute block activations in the backward pass (activation checkpointing)
            while training with gradients; the outputs and gradients are unchanged.

    Attributes:
        dim, mask_dim, num_queries, fusion_layers: as given (the shapes the decoder and the
            classifier are built with).
    """

    def __init__(
        self,
        clip_dim: int,
        dim: int = 768,
        depth: int = 6,
        num_heads: int = 12,
        num_queries: int = 100,
        fusion_layers: Sequence[int] = (0, 3, 6, 9, 12),
        mask_dim: int = 256,
        spatial_fusion: str = "dconv",
        multires_fusion: str = "scale_attention",
        mlp_ratio: float = 4.0,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1 or len(fusion_layers) < 1:
            raise ValueError("The adapter needs at least one block and one fusion layer.")
        self.fusion_layers = [int(layer) for layer in fusion_layers]
        self.dim = dim
        self.mask_dim = mask_dim
        self.num_queries = num_queries
        self.checkpoint = bool(checkpoint)
        self.queries = nn.Parameter(torch.zeros(num_queries, dim))
        self.reset_parameters()
        self.stem_proj = nn.Sequential(LayerNorm2d(clip_dim), nn.Conv2d(clip_dim, dim, 1))
        self.fusions = nn.ModuleList(
            MultiResFusion(clip_dim, dim, spatial_fusion, multires_fusion) for _ in self.fusion_layers
        )
        self.inject_before = [i * depth // len(self.fusion_layers) for i in range(len(self.fusion_layers))]
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.query_head = MLP(dim, dim, mask_dim, num_layers=3)  # MLP^Q, Eq. 3

    def reset_parameters(self) -> None:
        """The learnable queries (its children reset themselves)."""
        nn.init.trunc_normal_(self.queries, std=0.02)

    def forward(self, high_res: dict[int, torch.Tensor], low_res: dict[int, torch.Tensor]) -> AdapterOutput:
        """``high_res[l]`` ``(B, Dc, Gh, Gw)`` (restored slices) and ``low_res[l]`` ``(B, Dc, gh, gw)``
        (global view) for l in {0} ∪ fusion_layers."""
        fused = [
            fusion(high_res[layer], low_res[layer]) for fusion, layer in zip(self.fusions, self.fusion_layers)
        ]
        stem = self.stem_proj(high_res[0])
        b, _, gh, gw = stem.shape
        n = self.num_queries
        x = torch.cat([self.queries.expand(b, -1, -1), rearrange(stem, "b d h w -> b (h w) d")], dim=1)
        query_features = []
        for j, block in enumerate(self.blocks):
            for i, before in enumerate(self.inject_before):
                if before == j:
                    x = torch.cat([x[:, :n], x[:, n:] + rearrange(fused[i], "b d h w -> b (h w) d")], dim=1)
            if self.checkpoint and self.training and torch.is_grad_enabled():
                x = recompute(block, x, use_reentrant=False)
            else:
                x = block(x)
            query_features.append(self.query_head(self.norm(x[:, :n])))
        visual = rearrange(self.norm(x[:, n:]), "b (h w) d -> b d h w", h=gh, w=gw)
        return AdapterOutput(visual=visual, query_features=query_features, fused=fused)
