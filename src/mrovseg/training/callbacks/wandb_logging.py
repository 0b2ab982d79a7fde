"""Weights & Biases extras: a per-class IoU table and segmentation overlays with class labels.

Losses, the learning rate and per-benchmark scalars reach W&B through Lightning's
``WandbLogger`` like every other logger; this module adds what only W&B shows: a table of the
per-class IoU and images with W&B's interactive mask overlay (prediction and ground truth).
Other loggers are ignored, so nothing here runs unless ``logger=wandb``. :class:`WandbEvalLogger` is
the Lightning callback (``conf/callbacks/default.yaml``) that collects the overlays during validation
and logs both after each validation and test epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.vocabularies import split_synonyms


def _wandb_loggers(loggers: Sequence[Any]) -> list[Any]:
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return []
    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def overlay_payload(
    image: torch.Tensor, pred: torch.Tensor, label: torch.Tensor, class_names: Sequence[str]
) -> dict[str, Any]:
    """Arguments for ``wandb.Image``: the image as uint8 HWC and both masks with class labels.

    Prediction and label are brought to the image's size (nearest) if they differ; ignore
    pixels in the label get their own class id ``K`` named ``"ignore"``.
    """
    img = (image.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy()
    size = img.shape[:2]

    def fit(x: torch.Tensor) -> np.ndarray:
        if tuple(x.shape) != size:
            x = torch.nn.functional.interpolate(x[None, None].float(), size=size, mode="nearest")[0, 0].long()
        return x.numpy()

    k = len(class_names)
    gt = fit(label)
    gt = np.where(gt == IGNORE_INDEX, k, gt)
    labels = {i: (split_synonyms(str(n)) or [str(n)])[0] for i, n in enumerate(class_names)}
    labels[k] = "ignore"
    return {
        "data_or_path": img,
        "masks": {
            "prediction": {"mask_data": fit(pred).astype(np.int32), "class_labels": labels},
            "ground_truth": {"mask_data": gt.astype(np.int32), "class_labels": labels},
        },
    }


def log_eval_to_wandb(
    loggers: Sequence[Any],
    stage: str,
    benchmark: str,
    class_names: Sequence[str],
    entry: dict[str, Any],
    samples: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> None:
    """Logs the per-class IoU table and overlays of ``samples`` to every W&B logger."""
    targets = _wandb_loggers(loggers)
    if not targets:
        return
    import wandb

    table = wandb.Table(columns=["class", "IoU"], data=[[n, v] for n, v in entry["per_class_iou"].items()])
    images = [wandb.Image(**overlay_payload(img, pred, lab, class_names)) for img, pred, lab in samples]
    for lg in targets:
        payload: dict[str, Any] = {f"{stage}/{benchmark}/per_class_iou": table}
        if images:
            payload[f"{stage}/{benchmark}/overlays"] = images
        lg.experiment.log(payload)


class WandbEvalLogger(L.Callback):
    """Logs the per-class IoU table of every benchmark after each validation and test epoch, and the
    overlays of the first ``num_images`` validation images of each benchmark, to every W&B logger.

    Args:
        num_images: Validation overlays logged per benchmark.
    """

    def __init__(self, num_images: int = 4) -> None:
        self.num_images = num_images
        self.samples: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not _wandb_loggers(trainer.loggers) or trainer.sanity_checking:
            return
        samples = self.samples.setdefault(outputs.benchmark.name, [])
        for image, pred, label in zip(outputs.images, outputs.preds, outputs.labels):
            if len(samples) < self.num_images:
                samples.append((image.cpu(), pred.cpu(), label.cpu()))

    def _log(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        if not trainer.sanity_checking:
            for bench in pl_module.benchmarks:
                entry = pl_module.results.get(stage, {}).get(bench.name)
                if entry is not None:
                    log_eval_to_wandb(
                        trainer.loggers,
                        stage,
                        bench.name,
                        bench.class_names,
                        entry,
                        self.samples.get(bench.name, []),
                    )
        self.samples.clear()

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._log(trainer, pl_module, "test")
