"""LightningModule of MGCA-style text-supervised training (docs/mgca.md §3); evaluation is the shared base's.

Training reads ``batch["image"]`` and ``batch["nouns"]`` (the nouns of each caption) only; there is
no mask or label anywhere in the step. Per step:

1. every image's nouns, plus ``extra_nouns`` (default ``["background"]``, a text-only prior: every
   image has a background), give the batch's M nouns, their owner image and the same-phrase mask;
2. each noun is embedded by the frozen CLIP text encoder as the mean over the prompt templates
   (:meth:`~mrovseg.model.clip_backbone.CLIPBackbone.encode_names`: the package's one template-mean rule
   and its per-name cache, least recently used entries dropped past ``text_cache_size``);
3. the model's pixel embeddings give ``S`` (Eq. 1) and :class:`mrovseg.model.mgca.MGCALoss` the
   object/region/pixel losses.

Validation, test, prediction and checkpoints are those of :class:`mrovseg.training.base.SegmentationModule`
(sliding windows over ``model.semantic_scores``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mrovseg.model.mgca import MGCA, MGCALoss
from mrovseg.model.mgca.losses import same_phrase, similarity
from mrovseg.training.base import SegmentationModule


def batch_nouns(noun_lists: Sequence[Sequence[str]], extra: Sequence[str]) -> tuple[list[str], list[int]]:
    """Flattens per-image noun lists (each deduplicated, ``extra`` appended) → nouns and owner image."""
    flat: list[str] = []
    owner: list[int] = []
    for b, nouns in enumerate(noun_lists):
        seen: list[str] = []
        for n in [*nouns, *extra]:
            key = " ".join(str(n).lower().split())
            if key and key not in seen:
                seen.append(key)
        flat += seen
        owner += [b] * len(seen)
    return flat, owner


class MGCAModule(SegmentationModule):
    """Trains an :class:`MGCA` model from image–caption pairs.

    Args:
        model: the MGCA model.
        criterion: the multi-grained alignment loss.
        templates: prompt templates for nouns and for evaluation vocabularies.
        extra_nouns: nouns added to every caption (default ``["background"]``).
        text_cache_size: noun embeddings kept in memory.
        **kwargs: :class:`~mrovseg.training.base.SegmentationModule` options (optimizer, window, ...).
    """

    def __init__(
        self,
        model: MGCA,
        criterion: MGCALoss,
        templates: Sequence[str] = ("a photo of a {}.",),
        extra_nouns: Sequence[str] = ("background",),
        text_cache_size: int = 100_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, criterion, templates, **kwargs)
        self.extra_nouns = list(extra_nouns)
        self.text_cache_size = text_cache_size

    def noun_embeddings(self, nouns: Sequence[str]) -> torch.Tensor:
        """``(M, E)`` text embeddings of nouns: mean over templates, L2-normalised (the backbone's cache)."""
        return self.model.backbone.encode_names(nouns, self.templates, self.text_cache_size).to(self.device)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        images = batch["image"]
        if "nouns" not in batch:
            raise KeyError(
                f"MGCA training needs batches with 'nouns' (a caption datamodule); got keys {sorted(batch)}."
            )
        flat, owner_list = batch_nouns(batch["nouns"], self.extra_nouns)
        if not flat:
            raise ValueError("No noun in this batch's captions and no extra_nouns: nothing to align.")
        text = self.noun_embeddings(flat)
        owner = torch.tensor(owner_list, device=self.device)
        same = same_phrase(flat).to(self.device)
        emb, base = self.model.embeddings(images)
        sim = similarity(emb, text)
        pseudo = similarity(base, text) if self.criterion.pseudo_source == "clip" else None
        losses = self.criterion(sim, owner, same, pseudo)
        loss = losses["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"Non-finite MGCA loss at step {self.global_step}: { ({k: float(v) for k, v in losses.items()}) }."
            )
        bs = images.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for key, value in losses.items():
            if key != "loss":
                self.log(f"train/{key}", value, batch_size=bs)
        self.log("train/nouns_per_image", len(flat) / bs, batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=bs)
        return loss
