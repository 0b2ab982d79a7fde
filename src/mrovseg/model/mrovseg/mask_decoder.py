"""Hierarchical mask decoding — MROVSeg Sec. 3.5, Eq. 4-5 (and Table 2's single-scale baseline).

FPN-like: the fused features of the deepest three fusion layers ``F^{l_j}`` are brought to the
resolution of each decoding stage (×1, ×2, ×4 of the high-res token grid, i.e. 1/16, 1/8 and 1/4
of the input for ViT-B/16) after a 1×1 lateral projection, concatenated with the running visual
feature and upsampled by two transposed convolutions::

    x = TConv₁(cat(H, F^{l_-1}))            # ×2
    x = TConv₂(cat(x, Up₂(F^{l_-2})))       # ×4
    H_pix = MLP^pix(cat(x, Up₄(F^{l_-3})))  # Eq. 4
    M_mask = Q_f · H_pixᵀ                   # Eq. 5 (logits; the sigmoid is applied by the loss / inference)

With ``hierarchical=False`` the decoder is the single-scale baseline: ``H_pix = MLP^pix(H)`` on
the token grid. With fewer than three fusion layers the deepest available one is reused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrovseg.model.layers import MLP, LayerNorm2d


def _to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


class MaskDecoder(nn.Module):
    """Pixel features and mask logits from the adapter's output.

    Args:
        dim: adapter width.
        mask_dim: width of pixel and query features.
        hierarchical: use the hierarchical decoder (True) or the single-scale one.
    """

    def __init__(self, dim: int, mask_dim: int = 256, hierarchical: bool = True) -> None:
        super().__init__()
        self.hierarchical = hierarchical
        if hierarchical:
            d2, d4 = dim // 2, dim // 4
            self.lateral = nn.ModuleList(
                [nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, d2, 1), nn.Conv2d(dim, d4, 1)]
            )
            self.up1 = nn.Sequential(nn.ConvTranspose2d(2 * dim, d2, 2, stride=2), LayerNorm2d(d2), nn.GELU())
            self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * d2, d4, 2, stride=2), LayerNorm2d(d4), nn.GELU())
            self.pixel_mlp = MLP(2 * d4, d4, mask_dim, num_layers=3)  # MLP^pix, Eq. 4
        else:
            self.pixel_mlp = MLP(dim, dim, mask_dim, num_layers=3)

    def pixel_features(self, visual: torch.Tensor, fused: list[torch.Tensor]) -> torch.Tensor:
        """``visual`` ``(B, dim, Gh, Gw)``, ``fused`` list of ``(B, dim, Gh, Gw)`` → ``(B, mask_dim, h, w)``."""
        if not self.hierarchical:
            return self.pixel_mlp(_to_channels_last(visual)).permute(0, 3, 1, 2)
        deepest = [fused[max(len(fused) - 1 - i, 0)] for i in range(3)]
        x = self.up1(torch.cat([visual, self.lateral[0](deepest[0])], dim=1))
        f2 = F.interpolate(
            self.lateral[1](deepest[1]), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        x = self.up2(torch.cat([x, f2], dim=1))
        f3 = F.interpolate(
            self.lateral[2](deepest[2]), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.pixel_mlp(_to_channels_last(torch.cat([x, f3], dim=1))).permute(0, 3, 1, 2)

    @staticmethod
    def masks(query_features: torch.Tensor, pixel_features: torch.Tensor) -> torch.Tensor:
        """Eq. 5: ``(B, N, C) · (B, C, h, w)`` → mask logits ``(B, N, h, w)``."""
        return torch.einsum("bnc,bchw->bnhw", query_features, pixel_features)
