"""Stage 1 of OVSeg: a MaskFormer-style proposal head on frozen CLIP features.

OVSeg's stage 1 is MaskFormer (Cheng et al., NeurIPS 2021) with an open-vocabulary class head
(ov-seg ``open_vocab_seg/modeling/transformer/open_vocab_transformer_predictor.py``): N learned
queries attend to image features through a transformer decoder; each query gives a mask (dot
product of its mask embedding with per-pixel features) and a class embedding in CLIP's text space,
scored against the K class text embeddings and one learned "no-object" embedding:
``logit_k = τ · cos(e_q, t_k)`` with τ = 100. Here the image features are the frozen CLIP's own
tokens (the issue's choice: one CLIP for both stages), projected from a few tapped layers and
summed; the pixel decoder upsamples them (×2 per step, conv + GroupNorm + ReLU) to the mask
resolution. Deep supervision: every decoder layer's queries are scored by the shared heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def _mlp(dims: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv_gn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(min(32, cout // 4), cout), nn.ReLU(True)
    )


class ProposalHead(nn.Module):
    """Queries → mask logits and open-vocabulary class logits.

    Args:
        clip_width: width of the CLIP tokens.
        embed_dim: CLIP's joint embedding size (class embeddings live there).
        num_taps: number of tapped CLIP layers (each gets its own projection).
        dim: decoder width (256 in MaskFormer).
        mask_dim: mask-embedding width (256).
        num_queries: proposals per image (100).
        num_layers: decoder layers (6).
        num_heads: attention heads (8).
        ffn_dim: decoder feed-forward width (2048).
        upsample: ×2 steps of the pixel decoder (2: CLIP grid ×4).
        class_hidden: hidden width of the 2-layer class MLP (1024).
        logit_temperature: τ multiplying the cosine similarities (100).
    """

    def __init__(
        self,
        clip_width: int,
        embed_dim: int,
        num_taps: int,
        dim: int = 256,
        mask_dim: int = 256,
        num_queries: int = 100,
        num_layers: int = 6,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        upsample: int = 2,
        class_hidden: int = 1024,
        logit_temperature: float = 100.0,
    ) -> None:
        super().__init__()
        self.proj = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(clip_width), nn.Linear(clip_width, dim)) for _ in range(num_taps)
        )
        self.pos = nn.Parameter(torch.zeros(1, dim, 1, 1))
        pixel: list[nn.Module] = [_conv_gn(dim, mask_dim)]
        for _ in range(upsample):
            pixel += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                _conv_gn(mask_dim, mask_dim),
            ]
        pixel.append(nn.Conv2d(mask_dim, mask_dim, 1))
        self.pixel_decoder = nn.Sequential(*pixel)
        self.queries = nn.Embedding(num_queries, dim)
        self.query_pos = nn.Embedding(num_queries, dim)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(
                dim, num_heads, ffn_dim, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(num_layers)
        )
        self.out_norm = nn.LayerNorm(dim)
        self.mask_embed = _mlp([dim, dim, dim, mask_dim])
        self.class_embed = _mlp([dim, class_hidden, embed_dim])
        self.void_embed = nn.Parameter(torch.randn(embed_dim) * dim**-0.5)
        self.logit_temperature = logit_temperature
        self.num_queries = num_queries

    def class_logits(self, queries: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``(B, N, dim)`` queries, ``(K, E)`` text → ``(B, N, K+1)`` logits (no-object last)."""
        emb = F.normalize(self.class_embed(queries), dim=-1)
        classes = torch.cat([text.to(emb.dtype), F.normalize(self.void_embed, dim=0)[None].to(emb.dtype)])
        return self.logit_temperature * emb @ classes.T

    def forward(
        self, taps: Sequence[torch.Tensor], grid: tuple[int, int], text: torch.Tensor
    ) -> list[dict[str, torch.Tensor]]:
        """Predictions after every decoder layer (the last one is the final prediction).

        Args:
            taps: CLIP tokens ``(B, 1 + gh*gw, C)`` of the tapped layers ([CLS] first).
            grid: the patch grid ``(gh, gw)``.
            text: ``(K, E)`` L2-normalised class embeddings.

        Returns:
            one ``{'pred_logits': (B, N, K+1), 'pred_masks': (B, N, gh·2^u, gw·2^u)}`` per layer.
        """
        memory = sum(p(t[:, 1:].float()) for p, t in zip(self.proj, taps))
        fmap = rearrange(memory, "b (h w) d -> b d h w", h=grid[0], w=grid[1])
        pixel = self.pixel_decoder(fmap + self.pos)
        b = memory.shape[0]
        q = (self.queries.weight + self.query_pos.weight)[None].expand(b, -1, -1)
        outs = []
        for layer in self.layers:
            q = layer(q, memory)
            qn = self.out_norm(q)
            masks = torch.einsum("bnc,bchw->bnhw", self.mask_embed(qn), pixel)
            outs.append({"pred_logits": self.class_logits(qn, text), "pred_masks": masks})
        return outs
