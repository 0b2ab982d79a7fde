"""The MROVSeg meta-architecture (Sec. 3.3, Fig. 2): wires CLIP, slicer, adapter, decoder, classifier.

One forward step (ViT-B/16, 640² crop, p = 0.5)::

    images ─┬─ global view 320² ─┐
            └─ 4 slices of 320² ─┴─► CLIP trunk, ONE batched pass ─► tapped layers + last-block K/V
    restore slice tokens → 40² grid;  global tokens → 20² grid
    Multi-Res Adapter → H, Q_f (per block), F^l          (Eq. 2-3)
    mask decoder      → M_mask (B, N, 160, 160)          (Eq. 4-5)
    classifier        → logits (B, N, K+1)               (Eq. 6-8)

Views of different sizes (p ∉ {0.5} with ``clip_size = crop/2``) need one trunk pass per size.
Deep supervision: for every adapter block but the last, the block's ``Q_f`` gives masks (with
the final pixel features, as Mask2Former's decoder layers share mask features) and, through the
classifier with its own attention bias, class logits; the CLIP K/V are shared, so this adds
no CLIP work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from einops import rearrange
from torch import nn

from mrovseg.model.adapter import MultiResAdapter
from mrovseg.model.classifier import MultiGrainedClassifier
from mrovseg.model.clip_backbone import CLIPBackbone, ViewFeatures
from mrovseg.model.inference import semantic_inference
from mrovseg.model.mask_decoder import MaskDecoder
from mrovseg.model.slicer import Slicer


def _split(features: ViewFeatures, first: int) -> tuple[ViewFeatures, ViewFeatures]:
    """Splits a trunk pass over ``[globals ; slices]`` into two ViewFeatures."""

    def part(sl: slice) -> ViewFeatures:
        return ViewFeatures(
            layers={k: v[sl] for k, v in features.layers.items()},
            kv=[(k[sl], v[sl]) for k, v in features.kv],
            grid=features.grid,
        )

    return part(slice(0, first)), part(slice(first, None))


class MROVSeg(nn.Module):
    """Multi-resolution open-vocabulary segmenter on one frozen CLIP ViT.

    Args:
        backbone: the frozen CLIP.
        slice_ratio: slice ratio p (Table 3); 0 = global view only.
        clip_size: side of the global view (320 for 640² crops).
        num_cls_blocks: last CLIP blocks used by the classifier (3 for ViT-B/16, 6 for ViT-L/14);
            the proposals start from [CLS] of layer ``depth − num_cls_blocks``.
        adapter: keyword arguments of ``MultiResAdapter`` (``clip_dim`` is filled in).
        decoder: keyword arguments of ``MaskDecoder`` (``dim`` and ``mask_dim`` are filled in).
        classifier: keyword arguments of ``MultiGrainedClassifier`` (shapes are filled in), e.g.
            ``{"decoupled": False}``.
        deep_supervision: return ``aux_outputs`` in training.
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        slice_ratio: float = 0.5,
        clip_size: int = 320,
        num_cls_blocks: int = 3,
        adapter: Mapping[str, Any] | None = None,
        decoder: Mapping[str, Any] | None = None,
        classifier: Mapping[str, Any] | None = None,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.slicer = Slicer(slice_ratio, clip_size, backbone.patch_size)
        if not 1 <= num_cls_blocks <= backbone.depth:
            raise ValueError(f"num_cls_blocks must be in [1, {backbone.depth}], got {num_cls_blocks}.")
        self.num_cls_blocks = num_cls_blocks
        self.deep_supervision = deep_supervision
        adapter_kw = dict(adapter or {})
        self.adapter = MultiResAdapter(clip_dim=backbone.width, **adapter_kw)
        dim = self.adapter.norm.normalized_shape[0]
        mask_dim = self.adapter.query_head.net[-1].out_features
        if max(self.adapter.fusion_layers) > backbone.depth:
            raise ValueError(
                f"Fusion layers {self.adapter.fusion_layers} exceed CLIP depth {backbone.depth}."
            )
        self.decoder = MaskDecoder(dim=dim, mask_dim=mask_dim, **dict(decoder or {}))
        self.classifier = MultiGrainedClassifier(
            dim=dim,
            mask_dim=mask_dim,
            clip_width=backbone.width,
            clip_heads=backbone.heads,
            embed_dim=backbone.embed_dim,
            num_queries=self.adapter.num_queries,
            slices=slice_ratio > 0,
            **dict(classifier or {}),
        )

    @property
    def kv_from(self) -> int:
        return self.backbone.depth - self.num_cls_blocks

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but CLIP."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.") and p.requires_grad]

    def encode_views(self, images: torch.Tensor) -> tuple[ViewFeatures, ViewFeatures | None, Any]:
        """Normalises, builds global view and slices, and runs the CLIP trunk (once per view size)."""
        x = self.backbone.normalize(images)
        layout = self.slicer.layout(*x.shape[-2:])
        taps: Sequence[int] = sorted({0, *self.adapter.fusion_layers})
        g = self.slicer.global_view(x)
        if layout is None:
            return self.backbone.forward_views(g, taps, self.kv_from), None, None
        s = self.slicer.slices(x, layout)
        if s.shape[-2:] == g.shape[-2:]:
            feats = self.backbone.forward_views(torch.cat([g, s]), taps, self.kv_from)
            glob, sl = _split(feats, g.shape[0])
        else:
            glob = self.backbone.forward_views(g, taps, self.kv_from)
            sl = self.backbone.forward_views(s, taps, self.kv_from)
        return glob, sl, layout

    def forward(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> dict[str, Any]:
        """Args:
            images: ``(B, 3, H, W)`` in [0, 1]; H, W multiples of the patch size.
            text_embeddings: ``(K, E)`` L2-normalised class embeddings.

        Returns:
            ``{'pred_logits': (B, N, K+1), 'pred_masks': (B, N, h, w), 'aux_outputs': [...]}``.
        """
        glob, sl, layout = self.encode_views(images)
        b = images.shape[0]
        gg = glob.grid

        def lr_grid(tokens: torch.Tensor) -> torch.Tensor:
            return rearrange(tokens[:, 1:], "b (h w) d -> b d h w", h=gg[0], w=gg[1])

        lr = {k: lr_grid(v) for k, v in glob.layers.items()}
        hr = lr if sl is None else {k: self.slicer.restore(v[:, 1:], layout) for k, v in sl.layers.items()}
        dt = next(self.adapter.parameters()).dtype
        out = self.adapter({k: v.to(dt) for k, v in hr.items()}, {k: v.to(dt) for k, v in lr.items()})
        grid = tuple(out.visual.shape[-2:])
        pixel = self.decoder.pixel_features(out.visual, out.fused)
        att_features = self.classifier.attention_features(out.visual, gg)

        kv = []
        for (gk, gv), sk_sv in zip(glob.kv, sl.kv if sl is not None else [None] * len(glob.kv)):
            if not self.classifier.cls_key:  # Algorithm 1: patch tokens only, the [CLS] key is blocked
                gk, gv = gk[:, :, 1:], gv[:, :, 1:]
            if sk_sv is None:
                kv.append((gk, gv))
                continue
            sk, sv = (rearrange(t[:, :, 1:], "(b s) n l d -> b n (s l) d", b=b) for t in sk_sv)
            kv.append((torch.cat([gk, sk], dim=2), torch.cat([gv, sv], dim=2)))
        cls_token = glob.layers[self.kv_from][:, 0]

        def predict(query_features: torch.Tensor) -> dict[str, torch.Tensor]:
            bias = self.classifier.attention_bias(query_features, att_features, grid, gg, layout)
            logits = self.classifier(self.backbone, cls_token, kv, bias, text_embeddings)
            return {"pred_logits": logits, "pred_masks": self.decoder.masks(query_features, pixel)}

        result: dict[str, Any] = predict(out.query_features[-1])
        aux = out.query_features[:-1] if (self.training and self.deep_supervision) else []
        result["aux_outputs"] = [predict(q) for q in aux]
        return result

    def semantic_scores(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Per-class scores ``(B, K, h, w)`` (semantic inference of the final prediction)."""
        out = self(images, text_embeddings)
        return semantic_inference(out["pred_logits"], out["pred_masks"])
