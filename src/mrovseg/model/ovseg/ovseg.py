"""The OVSeg meta-architecture (Liang et al., CVPR 2023): proposals, then CLIP on each masked region.

One evaluation forward step::

    images ─► frozen CLIP trunk (ONE pass, whole image) ─► tapped tokens
           ─► ProposalHead ─► N masks + in-vocabulary logits (B, N, K+1)
    each non-empty proposal ─► crop box, blank-fill, resize ─► CLIP image tower (ONE pass PER REGION,
           batched; mask prompts on blank patches) ─► p_clip (softmax over K)
    ensemble (geometric): p = p_mf^(1−λ) · p_clip^λ; empty proposals get p_clip = 1
           (λ = 0: CLIP alone, empty proposals dropped)       — ov-seg ``ovseg_model.py`` semantic_inference

The output is MROVSeg's dict: ``pred_logits (B, N, K+1)``, ``pred_masks (B, N, h, w)``; in evaluation
also ``pred_probs (B, N, K)``, the ensemble, and :meth:`OVSeg.semantic_scores` returns OVSeg's map
``S = Σ_q p_q · sigmoid(M_q)``. ``pred_logits`` encodes the ensemble for
:func:`~mrovseg.model.inference.semantic_inference` (``[log p, log(1 − Σ p)]``; exact for non-empty
proposals, where Σ p ≤ 1 by Hölder's inequality). In training the
forward returns stage 1 only (for the set criterion); stage 2 trains from region–name pairs
(:mod:`mrovseg.training.ovseg`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mrovseg.model.clip_backbone import CLIPBackbone, trainable_parameters
from mrovseg.model.inference import semantic_inference
from mrovseg.model.ovseg.mask_prompt_clip import MaskPromptCLIP
from mrovseg.model.ovseg.proposal_head import ProposalHead
from mrovseg.model.region_ensemble import binary_masks, ensemble_probs, ensembled, probs_to_logits

__all__ = ["OVSeg", "ensemble_probs", "probs_to_logits"]


class OVSeg(nn.Module):
    """Two-stage open-vocabulary segmenter on one frozen CLIP.

    Args:
        backbone: the frozen CLIP.
        clip_size: side the image is resized to for stage 1's CLIP pass (None: as it is).
        tap_layers: CLIP layers whose tokens feed the proposal head (default: last three thirds).
        head: keyword arguments of :class:`ProposalHead` (shapes are filled in).
        region: keyword arguments of :class:`MaskPromptCLIP` (``prompt_depth``, ``blank``, ``finetune`` …).
        ensemble_weight: λ of the geometric ensemble (0.7 ADE, 0.6 PC, 0.45 VOC in ov-seg).
        mask_thr: binarisation threshold of the proposals' sigmoid (0.5 with R101c/ViT-B/16, 0.4 Swin-B).
        use_clip: run stage 2 at inference (False: stage 1's in-vocabulary logits alone).
        mask_prompts: use the mask prompts at inference (ov-seg ``MASK_PROMPT_FWD``).
        region_batch: regions per CLIP call.
        deep_supervision: return ``aux_outputs`` in training.
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        clip_size: int | None = None,
        tap_layers: Sequence[int] | None = None,
        head: Mapping[str, Any] | None = None,
        region: Mapping[str, Any] | None = None,
        ensemble_weight: float = 0.7,
        mask_thr: float = 0.5,
        use_clip: bool = True,
        mask_prompts: bool = True,
        region_batch: int = 256,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        if not 0 <= ensemble_weight <= 1:
            raise ValueError(f"ensemble_weight must be in [0, 1], got {ensemble_weight}.")
        self.backbone = backbone
        d = backbone.depth
        taps = sorted(set(tap_layers)) if tap_layers else sorted({max(1, d // 3), max(1, 2 * d // 3), d})
        if min(taps) < 0 or max(taps) > d:
            raise ValueError(f"tap_layers {taps} out of range for a {d}-layer CLIP.")
        self.tap_layers = taps
        self.clip_size = clip_size
        self.head = ProposalHead(backbone.width, backbone.embed_dim, len(taps), **dict(head or {}))
        self.region = MaskPromptCLIP(backbone, **dict(region or {}))
        self.ensemble_weight = ensemble_weight
        self.mask_thr = mask_thr
        self.use_clip = use_clip
        self.mask_prompts = mask_prompts
        self.region_batch = region_batch
        self.deep_supervision = deep_supervision
        self.num_region_passes = 0  # regions encoded by CLIP so far (efficiency accounting)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the frozen CLIP."""
        return trainable_parameters(self)

    # ------------------------------------------------------------------ stage 1
    def proposals(self, images: torch.Tensor, text: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Stage 1 on ``(B, 3, H, W)`` images in [0, 1]: one prediction dict per decoder layer."""
        x = self.backbone.normalize(images)
        if self.clip_size is not None and tuple(x.shape[-2:]) != (self.clip_size, self.clip_size):
            x = F.interpolate(
                x, size=(self.clip_size,) * 2, mode="bilinear", align_corners=False, antialias=True
            )
        feats = self.backbone.forward_views(x, self.tap_layers, cls_layer=self.backbone.depth)
        return self.head([feats.layers[t] for t in self.tap_layers], feats.grid, text)

    def binary_masks(self, pred_masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, N, h, w)`` mask logits → ``(B, N, H, W)`` bool (bilinear upsampling, sigmoid > thr)."""
        return binary_masks(pred_masks, size, self.mask_thr)

    # ------------------------------------------------------------------ stage 2
    def region_embeddings(
        self, images: torch.Tensor, masks: torch.Tensor, image_index: torch.Tensor, use_prompts: bool = True
    ) -> torch.Tensor:
        """L2-normalised CLIP embeddings ``(R, E)`` of ``R`` masked regions (``masks (R, H, W)`` bool)."""
        self.num_region_passes += len(masks)
        return self.region(self.backbone, images, masks, image_index, use_prompts, self.region_batch)

    def region_logits(self, embeddings: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """CLIP's logits ``(R, K)``: its logit scale times cosine similarity."""
        return self.backbone.logit_scale * embeddings @ text.float().T

    def ensemble(self, images: torch.Tensor, text: torch.Tensor, result: dict[str, Any]) -> dict[str, Any]:
        """Replaces ``pred_logits`` of a stage-1 result with the CLIP ensemble (see module docstring)."""
        logits, masks = result["pred_logits"].float(), result["pred_masks"]

        def region_logits(binary: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
            emb = self.region_embeddings(images, binary, image_index, use_prompts=self.mask_prompts)
            return self.region_logits(emb, text)

        probs, valid = ensembled(images, logits, masks, self.ensemble_weight, self.mask_thr, region_logits)
        return {
            "pred_logits": probs_to_logits(probs),
            "pred_probs": probs,
            "pred_masks": masks,
            "aux_outputs": [],
            "proposal_logits": logits,
            "region_valid": valid,
        }

    # ------------------------------------------------------------------ API shared with MROVSeg
    def forward(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> dict[str, Any]:
        """Args:
            images: ``(B, 3, H, W)`` in [0, 1].
            text_embeddings: ``(K, E)`` L2-normalised class embeddings.

        Returns:
            ``{'pred_logits': (B, N, K+1), 'pred_masks': (B, N, h, w), 'aux_outputs': [...]}``; in
            training stage 1 only, in evaluation the ensemble (if ``use_clip``).
        """
        outs = self.proposals(images, text_embeddings)
        result: dict[str, Any] = dict(outs[-1])
        result["aux_outputs"] = outs[:-1] if (self.training and self.deep_supervision) else []
        if self.training or not self.use_clip:
            return result
        return self.ensemble(images, text_embeddings, result)

    def semantic_scores(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Per-class scores ``(B, K, h, w)``: ``Σ_q p_q · sigmoid(M_q)`` with the ensembled ``p``."""
        out = self(images, text_embeddings)
        if "pred_probs" not in out:
            return semantic_inference(out["pred_logits"], out["pred_masks"])
        return torch.einsum("bnk,bnhw->bkhw", out["pred_probs"], out["pred_masks"].float().sigmoid())
