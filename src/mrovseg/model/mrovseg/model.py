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

from mrovseg.model.clip_backbone import CLIPBackbone, ViewFeatures, trainable_parameters
from mrovseg.model.inference import semantic_inference
from mrovseg.model.mrovseg.adapter import MultiResAdapter
from mrovseg.model.mrovseg.classifier import MultiGrainedClassifier
from mrovseg.model.mrovseg.mask_decoder import MaskDecoder
from mrovseg.model.mrovseg.slicer import Slicer
from mrovseg.model.ovseg.mask_prompt_clip import MaskPromptCLIP
from mrovseg.model.region_ensemble import ensembled
from mrovseg.model.seeded_init import redraw_by_name_

INITS = ("torch", "vit")


def vit_linear_init_(layer: nn.Linear) -> None:
    """ViT / DETR's linear layer: ``trunc_normal_(std=0.02)`` (its bounds ±2 are absolute, so in effect
    a normal of std 0.02), bias zero."""
    nn.init.trunc_normal_(layer.weight, std=0.02)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def vit_init_(module: nn.Module) -> None:
    """Re-initialise every ``nn.Linear`` under ``module`` by :func:`vit_linear_init_`. A layer whose
    weights are all zero (a gate that must start closed) is left alone."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear) and layer.weight.any():
            vit_linear_init_(layer)


def _split(features: ViewFeatures, first: int) -> tuple[ViewFeatures, ViewFeatures]:
    """Splits a trunk pass over ``[global views ; slices]`` into two ViewFeatures."""

    def part(rows: slice) -> ViewFeatures:
        return ViewFeatures(
            layers={k: v[rows] for k, v in features.layers.items()},
            kv=[(k[rows], v[rows]) for k, v in features.kv],
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
        init: initial weights of the trainable parts' linear layers: ``"torch"`` (PyTorch's defaults,
            uniform with bound 1/sqrt(fan_in)) or ``"vit"`` (the ViT / DETR transformer convention:
            normal of std 0.02, zero biases; convolutions and zero-initialised gates keep theirs).
        region_ensemble: λ of a geometric ensemble, at evaluation only, with the frozen CLIP on each
            predicted mask's crop (:mod:`mrovseg.model.region_ensemble`; an extension, not the paper's);
            0 = off (the paper's inference), 1 = the region crops' CLIP scores alone.
        region_mask_thr: binarisation threshold of the masks whose crops CLIP classifies.
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
        init: str = "torch",
        region_ensemble: float = 0.0,
        region_mask_thr: float = 0.5,
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if not 0 <= region_ensemble <= 1 or not 0 < region_mask_thr < 1:
            raise ValueError(
                f"region_ensemble must be in [0, 1] and region_mask_thr in (0, 1), got {region_ensemble} "
                f"and {region_mask_thr}."
            )
        self.init = init
        self.region_ensemble = region_ensemble
        self.region_mask_thr = region_mask_thr
        # CLIP on region crops, no prompts and no weights of its own: held outside the module tree, so the
        # state dict (and every checkpoint) is the same with the ensemble on or off
        self._region_clip = (MaskPromptCLIP(backbone, prompt_depth=0),)
        self.backbone = backbone
        self.slicer = Slicer(slice_ratio, clip_size, backbone.patch_size)
        if not 1 <= num_cls_blocks <= backbone.depth:
            raise ValueError(f"num_cls_blocks must be in [1, {backbone.depth}], got {num_cls_blocks}.")
        self.num_cls_blocks = num_cls_blocks
        self.deep_supervision = deep_supervision
        self.adapter = MultiResAdapter(clip_dim=backbone.width, **dict(adapter or {}))
        dim, mask_dim = self.adapter.dim, self.adapter.mask_dim
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
        if init == "vit":
            for part in (self.adapter, self.decoder, self.classifier):
                vit_init_(part)

    @property
    def cls_layer(self) -> int:
        """The CLIP layer whose [CLS] starts the proposals (``depth − num_cls_blocks``)."""
        return self.backbone.depth - self.num_cls_blocks

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but CLIP."""
        return trainable_parameters(self)

    def redraw_initial_weights(self, seed: int) -> list[str]:
        """``seed_by_name=true``: each trainable module's initial weights from ``(seed, its name)`` alone,
        so settings that change one module start the others from the same weights (model.seeded_init)."""
        parts = {"adapter": self.adapter, "decoder": self.decoder, "classifier": self.classifier}
        return redraw_by_name_(parts, seed, vit_linear_init_ if self.init == "vit" else None)

    def encode_views(self, images: torch.Tensor) -> tuple[ViewFeatures, ViewFeatures | None, Any]:
        """Normalises, builds global view and slices, and runs the CLIP trunk (once per view size).

        Returns:
            The global view's features, the slices' features (None when p = 0) and the slice layout.
        """
        x = self.backbone.normalize(images)
        layout = self.slicer.layout(*x.shape[-2:])
        taps: Sequence[int] = sorted({0, *self.adapter.fusion_layers})
        global_view = self.slicer.global_view(x)
        if layout is None:
            return self.backbone.forward_views(global_view, taps, self.cls_layer), None, None
        slices = self.slicer.slices(x, layout)
        if slices.shape[-2:] == global_view.shape[-2:]:
            both = self.backbone.forward_views(torch.cat([global_view, slices]), taps, self.cls_layer)
            global_feats, slice_feats = _split(both, global_view.shape[0])
        else:
            global_feats = self.backbone.forward_views(global_view, taps, self.cls_layer)
            slice_feats = self.backbone.forward_views(slices, taps, self.cls_layer)
        return global_feats, slice_feats, layout

    def classification_kv(
        self, global_feats: ViewFeatures, slice_feats: ViewFeatures | None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per classification block, keys and values ``(B, heads, T, head_dim)`` of the classifier.

        ``[global patches ; slice patches]`` (Algorithm 1), the slices of each image in layout
        order; with ``cls_key`` the global [CLS] first; without slice keys (p = 0 or
        single-resolution attention) the global view's only.
        """
        use_slices = slice_feats is not None and self.classifier.slice_keys
        start = 0 if self.classifier.cls_key else 1  # Algorithm 1: the [CLS] key is blocked
        b = len(global_feats.layers[self.cls_layer])
        kv = []
        for i, (gk, gv) in enumerate(global_feats.kv):
            if start:
                gk, gv = gk[:, :, start:], gv[:, :, start:]
            if not use_slices:
                kv.append((gk, gv))
                continue
            sk, sv = (rearrange(t[:, :, 1:], "(b s) n l d -> b n (s l) d", b=b) for t in slice_feats.kv[i])
            kv.append((torch.cat([gk, sk], dim=2), torch.cat([gv, sv], dim=2)))
        return kv

    def forward(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> dict[str, Any]:
        """Args:
            images: ``(B, 3, H, W)`` in [0, 1]; H, W multiples of the patch size.
            text_embeddings: ``(K, E)`` L2-normalised class embeddings.

        Returns:
            ``{'pred_logits': (B, N, K+1), 'pred_masks': (B, N, h, w), 'aux_outputs': [...]}``.
        """
        global_feats, slice_feats, layout = self.encode_views(images)
        global_grid = global_feats.grid

        def to_grid(tokens: torch.Tensor) -> torch.Tensor:  # global view's patch tokens → (B, D, gh, gw)
            return rearrange(tokens[:, 1:], "b (h w) d -> b d h w", h=global_grid[0], w=global_grid[1])

        low_res = {k: to_grid(v) for k, v in global_feats.layers.items()}
        high_res = (
            low_res
            if slice_feats is None
            else {k: self.slicer.restore(v[:, 1:], layout) for k, v in slice_feats.layers.items()}
        )
        dt = next(self.adapter.parameters()).dtype
        out = self.adapter(
            {k: v.to(dt) for k, v in high_res.items()}, {k: v.to(dt) for k, v in low_res.items()}
        )
        grid = tuple(out.visual.shape[-2:])
        pixel = self.decoder.pixel_features(out.visual, out.fused)
        att_features = self.classifier.attention_features(out.visual, global_grid)
        kv = self.classification_kv(global_feats, slice_feats)
        cls_token = global_feats.layers[self.cls_layer][:, 0]

        def predict(query_features: torch.Tensor) -> dict[str, torch.Tensor]:
            bias = self.classifier.attention_bias(query_features, att_features, grid, global_grid, layout)
            logits = self.classifier(self.backbone, cls_token, kv, bias, text_embeddings)
            return {"pred_logits": logits, "pred_masks": self.decoder.masks(query_features, pixel)}

        result: dict[str, Any] = predict(out.query_features[-1])
        aux = out.query_features[:-1] if (self.training and self.deep_supervision) else []
        result["aux_outputs"] = [predict(q) for q in aux]
        return result

    def semantic_scores(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Per-class scores ``(B, K, h, w)`` (semantic inference of the final prediction; with
        ``region_ensemble`` > 0 the class probabilities are first ensembled with CLIP's on each mask's crop)."""
        out = self(images, text_embeddings)
        if self.region_ensemble <= 0:
            return semantic_inference(out["pred_logits"], out["pred_masks"])

        def region_logits(binary: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
            emb = self._region_clip[0](self.backbone, images, binary, image_index, use_prompts=False)
            return self.backbone.logit_scale * emb @ text_embeddings.float().T

        probs, _ = ensembled(
            images,
            out["pred_logits"],
            out["pred_masks"],
            self.region_ensemble,
            self.region_mask_thr,
            region_logits,
        )
        return torch.einsum("bnk,bnhw->bkhw", probs, out["pred_masks"].float().sigmoid())
