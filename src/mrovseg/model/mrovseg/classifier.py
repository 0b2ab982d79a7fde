"""Mask classification: decoupled attention masks + multi-grained masked attention — Sec. 3.6, Eq. 6-8.

Attention masks (Eq. 6-7), one per CLIP head::

    A_local  = MLP^L(H)            on the high-res token grid      M_local  = Q_f · A_localᵀ
    A_global = MLP^G(MaxPool(H))   on the global view's grid       M_global = Q_f · A_globalᵀ

``M_local`` is gathered from the restored grid to every slice's own token positions.

Multi-grained masked attention (Eq. 8, Algorithm 1): ``N`` proposal tokens start as CLIP's [CLS]
of layer ``L − n`` of the global view plus a learnable positional embedding (zero-initialised),
and run through the last ``n`` *frozen* CLIP blocks. In each block, the proposals are the only
queries; the keys/values are CLIP's own, computed in the single trunk pass and passed in here.
As in Algorithm 1 (``M = cat([M_global, M_local])`` over the patch tokens) and SAN, the keys are
the *patch* tokens only, ``[global patch tokens ; slice patch tokens]`` with the additive bias
``[M_global ; M_local]``: the global [CLS] key is blocked, so a learned mask can shut out all
whole-image context. ``cls_key=True`` is the earlier variant that also keeps the global [CLS] key
with bias 0: keys ``[global [CLS] ; global patches ; slice patches]``, bias ``[0 ; M_global ;
M_local]``. The proposals then go through ``ln_post`` and ``proj``; their cosine similarity with
the text embeddings and a learnable void embedding, times CLIP's logit scale, are the class
logits ``(B, N, K+1)``.

With a zero bias on the global view (slices blocked), a proposal is exactly CLIP's [CLS] path
with the [CLS] → [CLS] attention removed (with ``cls_key=True``: exactly CLIP's [CLS] path, so
the output equals CLIP's own image embedding); both are tested. ``decoupled=False`` is the
single-mask variant: one MLP on the high-res grid; the global mask is its max-pool to the
global grid. ``multi_grained=False`` is single-resolution masked attention (SAN, MaskCLIP):
the keys are the global view's patch tokens only, for the Table 2 rows without multi-grained
masked attention. The blocks themselves run in ``CLIPBackbone.classify``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.layers import MLP
from mrovseg.model.mrovseg.slicer import SliceLayout, Slicer


class MultiGrainedClassifier(nn.Module):
    """Classifies mask proposals with the last frozen CLIP blocks under learned attention biases.

    Args:
        dim: adapter width (input of MLP^L / MLP^G).
        mask_dim: width of the query features ``Q_f``.
        clip_width: CLIP width.
        clip_heads: CLIP attention heads (one bias per head).
        embed_dim: CLIP joint embedding width.
        num_queries: number of proposals N.
        decoupled: decoupled local/global masks (True) or a single mask (False).
        cls_key: also attend to the global view's [CLS] key with bias 0 (the earlier variant);
            False (default, Algorithm 1): patch tokens only.
        multi_grained: multi-grained masked attention, keys of the global view and the slices
            (True), or single-resolution masked attention over the global view's keys only, as
            SAN / MaskCLIP (False; Table 2, rows without multi-grained masked attention).
        slices: the model has slices (p > 0). Without slice keys (no slices, or
            ``multi_grained=False``) and with decoupled masks, only the global mask exists (MLP^G)
            and MLP^L is not kept.
    """

    def __init__(
        self,
        dim: int,
        mask_dim: int,
        clip_width: int,
        clip_heads: int,
        embed_dim: int,
        num_queries: int,
        decoupled: bool = True,
        cls_key: bool = False,
        multi_grained: bool = True,
        slices: bool = True,
    ) -> None:
        super().__init__()
        self.heads = clip_heads
        self.decoupled = decoupled
        self.cls_key = cls_key
        self.multi_grained = multi_grained
        self.slice_keys = multi_grained and slices  # the slices' patch tokens are keys
        self.local_mlp: MLP | None = MLP(dim, dim, clip_heads * mask_dim, num_layers=3)  # MLP^L
        self.global_mlp = MLP(dim, dim, clip_heads * mask_dim, num_layers=3) if decoupled else None  # MLP^G
        if decoupled and not self.slice_keys:
            # no slice keys (p = 0, or single-resolution attention): M_local would never reach the
            # loss (and DDP would stop on a parameter without gradient). MLP^L is still drawn
            # first, so the other parameters get the same initial values for the same seed.
            self.local_mlp = None
        self.query_pos = nn.Parameter(torch.zeros(num_queries, clip_width))
        self.void_embed = nn.Parameter(torch.empty(embed_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``query_pos`` zero, the void class's embedding normal with std ``embed_dim^-1/2``."""
        nn.init.zeros_(self.query_pos)
        with torch.no_grad():
            self.void_embed.copy_(torch.randn(self.void_embed.shape) * self.void_embed.numel() ** -0.5)

    def attention_features(
        self, visual: torch.Tensor, global_grid: tuple[int, int]
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Eq. 6: ``A_local`` ``(B, Gh*Gw, heads, C)`` and ``A_global`` ``(B, gh*gw, heads, C)``.

        ``A_local`` is None when there is no MLP^L (decoupled masks, no slices); with a single mask
        both are the high-res features.
        """
        tokens = rearrange(visual, "b d h w -> b h w d")
        a_local = None
        if self.local_mlp is not None:
            a_local = rearrange(self.local_mlp(tokens), "b h w (n c) -> b (h w) n c", n=self.heads)
        if not self.decoupled:
            return a_local, a_local
        pooled = rearrange(F.adaptive_max_pool2d(visual, global_grid), "b d h w -> b h w d")
        a_global = rearrange(self.global_mlp(pooled), "b h w (n c) -> b (h w) n c", n=self.heads)
        return a_local, a_global

    def attention_bias(
        self,
        query_features: torch.Tensor,
        features: tuple[torch.Tensor | None, torch.Tensor],
        grid: tuple[int, int],
        global_grid: tuple[int, int],
        layout: SliceLayout | None,
    ) -> torch.Tensor:
        """Eq. 7: bias ``(B, heads, N, gh*gw + S*g)`` over ``[global; slices]``.

        With ``cls_key`` a zero column for the global [CLS] key comes first: ``(..., 1 + gh*gw + S*g)``.
        Without slice keys (``layout`` None or ``multi_grained=False``): over the global view only.
        """
        a_local, a_global = features
        layout = layout if self.slice_keys else None
        m_local = None
        if a_local is not None and (layout is not None or not self.decoupled):
            m_local = torch.einsum("bqc,blnc->bnql", query_features, a_local)  # (B, heads, N, Gh*Gw)
        if self.decoupled:
            m_global = torch.einsum("bqc,blnc->bnql", query_features, a_global)
        else:  # single mask: the global mask is the high-res mask max-pooled to the global grid
            m_grid = rearrange(m_local, "b n q (h w) -> (b n) q h w", h=grid[0], w=grid[1])
            m_global = rearrange(
                F.adaptive_max_pool2d(m_grid, global_grid), "(b n) q h w -> b n q (h w)", n=self.heads
            )
        parts = [m_global.new_zeros(*m_global.shape[:-1], 1), m_global] if self.cls_key else [m_global]
        if layout is not None:
            parts.append(
                Slicer.gather(rearrange(m_local, "b n q (h w) -> b n q h w", h=grid[0], w=grid[1]), layout)
            )
        return torch.cat(parts, dim=-1)

    def forward(
        self,
        backbone: CLIPBackbone,
        cls_token: torch.Tensor,
        kv: list[tuple[torch.Tensor, torch.Tensor]],
        bias: torch.Tensor,
        text_embeddings: torch.Tensor,
    ) -> torch.Tensor:
        """Eq. 8 through the last CLIP blocks, then cosine logits.

        Args:
            backbone: the frozen CLIP (its last ``len(kv)`` blocks classify).
            cls_token: ``(B, D)`` [CLS] of the global view at the tap layer.
            kv: per classification block, keys and values ``(B, heads, T, head_dim)`` of
                ``[global patches; slice patches]`` (with ``cls_key``: ``[global CLS; ...]`` first).
            bias: ``(B, heads, N, T)`` additive attention bias.
            text_embeddings: ``(K, E)`` L2-normalised class embeddings.

        Returns:
            Class logits ``(B, N, K + 1)``, the last column being void.
        """
        proposals = cls_token[:, None, :] + self.query_pos[None]  # X_prop (B, N, D)
        emb = F.normalize(backbone.classify(proposals, kv, bias).float(), dim=-1)
        classes = torch.cat(
            [text_embeddings.float(), F.normalize(self.void_embed.float(), dim=-1)[None]], dim=0
        )
        return backbone.logit_scale * emb @ classes.t()
