"""MROVSeg's training: the set-prediction loss with Hungarian matching and deep supervision.

Labels → per-class target masks (:func:`~mrovseg.model.criterion.targets_from_semantic`) → the
Hungarian-matched loss (:class:`~mrovseg.model.criterion.SetCriterion`) on the model's outputs.
Everything else (vocabularies, evaluation, optimizer, checkpoints) is the shared
:class:`~mrovseg.training.base.SegmentationModule`. OVSeg's stage 1 trains its proposal head with the
same step (:func:`set_prediction_step`).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from mrovseg.model.criterion import targets_from_semantic
from mrovseg.training.base import SegmentationModule


def set_prediction_step(module: L.LightningModule, batch: dict[str, Any]) -> torch.Tensor:
    """One training step of a mask-classification model on semantic labels: forward on the training
    vocabulary, the criterion's loss terms, a clear stop on a non-finite loss, the logs."""
    if not module.train_class_names:
        raise RuntimeError("No training vocabulary: the datamodule must expose `train_class_names`.")
    outputs = module(batch["image"], module.train_class_names)
    losses = module.criterion(outputs, targets_from_semantic(batch["label"]))
    loss = module.criterion.total(losses)
    if not torch.isfinite(loss):
        bad = {k: float(v) for k, v in losses.items() if not torch.isfinite(v)}
        raise FloatingPointError(
            f"Non-finite loss {float(loss)} at step {module.global_step} (terms: {bad}). Training stopped; "
            "the last good checkpoint is in checkpoints/last.ckpt. Try a lower lr or gradient clipping."
        )
    bs = batch["image"].shape[0]
    module.log("train/loss", loss, prog_bar=True, batch_size=bs)
    for key in ("loss_ce", "loss_mask", "loss_dice"):
        module.log(f"train/{key}", losses[key], batch_size=bs)
    module.log("train/lr", module.optimizers().param_groups[0]["lr"], prog_bar=False, batch_size=bs)
    return loss


class MROVSegModule(SegmentationModule):
    """Trains an :class:`~mrovseg.model.mrovseg.MROVSeg` model with the set criterion; the arguments are
    :class:`~mrovseg.training.base.SegmentationModule`'s (``criterion``: a ``SetCriterion``)."""

    def forward(self, images: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
        return self.model(images, self.text_embeddings(class_names))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return set_prediction_step(self, batch)
