"""LightningModule: joins the MROVSeg model, the set-prediction loss and the metrics.

* Training: labels → per-class target masks → Hungarian-matched loss with deep supervision
  (``SetCriterion``); AdamW without weight decay on norms, biases, embeddings and queries; poly
  decay (power 0.9) per step. CLIP is frozen and never reaches the optimizer.
* Validation / test: each dataloader is one benchmark with its own vocabulary; images are
  labelled with the shared sliding-window routine and scored against labels at original
  resolution; metrics are logged as ``val/<benchmark>/mIoU`` etc.
* Text embeddings are computed once per vocabulary (``CLIPBackbone.encode_vocabulary`` caches).
* Checkpoints hold the trained parameters only: the frozen CLIP weights come from the CLIP
  config (tag or file) and are re-inserted on load; the CLIP identity is stored and checked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from mrovseg.constants import IGNORE_INDEX
from mrovseg.metrics import SegMetrics, per_class_iou_dict
from mrovseg.model.criterion import SetCriterion, targets_from_semantic
from mrovseg.model.dense_clip import DenseCLIP
from mrovseg.model.inference import sliding_window, upsample_argmax
from mrovseg.model.mrovseg import MROVSeg
from mrovseg.speed import adamw_options

log = logging.getLogger(__name__)
NO_DECAY_KEYWORDS = ("queries", "query_pos", "void_embed", "pos_embed", "norm")


@dataclass
class Benchmark:
    """An evaluation vocabulary: name, class names and the classes seen in training (or None)."""

    name: str
    class_names: list[str]
    seen_classes: list[int] | None = None


def save_label_png(path: Path, labels: np.ndarray, num_classes: int) -> None:
    """Writes a label map as PNG: uint8 when K ≤ 255 (so 255 stays free), else uint16."""
    from PIL import Image

    dtype = np.uint8 if num_classes <= 255 else np.uint16
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(dtype)).save(path)


class MROVSegModule(L.LightningModule):
    """Trains and evaluates an ``MROVSeg`` model.

    Args:
        model: the segmentation network.
        criterion: the set-prediction loss.
        templates: prompt templates (each with ``{}``) used for every vocabulary.
        lr: AdamW base learning rate (2e-4).
        weight_decay: AdamW weight decay (1e-4), not applied to norms, biases, embeddings, queries.
        poly_power: power of the per-step polynomial decay (0.9).
        betas: AdamW betas.
        window: sliding-window side at evaluation (the train crop).
        window_overlap: overlap fraction of neighbouring windows.
        window_batch: windows per forward at evaluation.
        num_log_images: validation overlays logged per benchmark (W&B only).
        prediction_dir: if set, test predictions are written there as
            ``<benchmark>/<image stem>.png``.
    """

    def __init__(
        self,
        model: MROVSeg | DenseCLIP,
        criterion: SetCriterion,
        templates: Sequence[str] = ("a photo of a {}.",),
        lr: float = 2e-4,
        weight_decay: float = 1e-4,
        poly_power: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        window: int = 640,
        window_overlap: float = 1 / 3,
        window_batch: int = 4,
        num_log_images: int = 4,
        prediction_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "criterion"])
        self.model = model
        self.criterion = criterion
        self.templates = list(templates)
        self.train_class_names: list[str] | None = None
        self.benchmarks: list[Benchmark] = []
        self.metrics = nn.ModuleDict()
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self._log_samples: dict[str, list] = {}
        self.build_config: dict[str, Any] | None = None  # set by mrovseg.checkpoint.build_module

    # ------------------------------------------------------------------ setup
    def configure_vocabularies(
        self, train_class_names: Sequence[str] | None, benchmarks: Sequence[Any]
    ) -> None:
        """Sets the training vocabulary and the evaluation benchmarks (one per dataloader)."""
        self.train_class_names = list(train_class_names) if train_class_names else None
        self.benchmarks = [Benchmark(b.name, list(b.class_names), b.seen_classes) for b in benchmarks]
        for b in self.benchmarks:
            if b.name not in self.metrics:
                self.metrics[b.name] = self._new_metric(b, ())

    @staticmethod
    def _new_metric(bench: Benchmark, regions: Sequence[str]) -> SegMetrics:
        k = len(bench.class_names)
        return SegMetrics(k, IGNORE_INDEX, bench.class_names, bench.seen_classes, region_names=tuple(regions))

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return
        self.configure_vocabularies(
            getattr(dm, "train_class_names", None), getattr(dm, "eval_benchmarks", [])
        )

    def text_embeddings(self, class_names: Sequence[str]) -> torch.Tensor:
        return self.model.backbone.encode_vocabulary(class_names, self.templates).to(self.device)

    # ------------------------------------------------------------------ training
    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
        return self.model(images, self.text_embeddings(class_names))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if not self.train_class_names:
            raise RuntimeError("No training vocabulary: the datamodule must expose `train_class_names`.")
        outputs = self(batch["image"], self.train_class_names)
        losses = self.criterion(outputs, targets_from_semantic(batch["label"]))
        loss = self.criterion.total(losses)
        if not torch.isfinite(loss):
            bad = {k: float(v) for k, v in losses.items() if not torch.isfinite(v)}
            raise FloatingPointError(
                f"Non-finite loss {float(loss)} at step {self.global_step} (terms: {bad}). Training stopped; "
                "the last good checkpoint is in checkpoints/last.ckpt. Try a lower lr or gradient clipping."
            )
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for key in ("loss_ce", "loss_mask", "loss_dice"):
            self.log(f"train/{key}", losses[key], batch_size=bs)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], prog_bar=False, batch_size=bs)
        return loss

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict_scores(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Per-class scores ``(K, h, w)`` of one image ``(3, h, w)`` by sliding windows."""

        hp = self.hparams
        return sliding_window(
            lambda windows: self.model.semantic_scores(windows, text),
            image,
            hp.window,
            hp.window_overlap,
            hp.window_batch,
        )

    def _eval_step(self, batch: dict[str, Any], dataloader_idx: int, stage: str) -> None:
        bench = self.benchmarks[dataloader_idx]
        text = self.text_embeddings(bench.class_names)
        metric: SegMetrics = self.metrics[bench.name]
        regions_in_batch = tuple(sorted(batch.get("regions", {})))
        if regions_in_batch != metric.region_names and not metric.update_called:
            # samples carry named regions (e.g. "small" objects): score them too
            metric = self.metrics[bench.name] = self._new_metric(bench, regions_in_batch).to(self.device)
        for i in range(batch["image"].shape[0]):
            label = batch["label"][i]
            scores = self.predict_scores(batch["image"][i], text)
            pred = upsample_argmax(scores, tuple(label.shape))
            regions = {k: v[i : i + 1] for k, v in batch.get("regions", {}).items()}
            metric.update(pred[None], label[None], regions or None)
            if stage == "test" and self.hparams.prediction_dir:
                name = batch["name"][i]
                out = Path(self.hparams.prediction_dir) / bench.name / f"{name}.png"
                save_label_png(out, pred.cpu().numpy(), len(bench.class_names))
            samples = self._log_samples.setdefault(bench.name, [])
            if stage == "val" and len(samples) < self.hparams.num_log_images:
                samples.append((batch["image"][i].cpu(), pred.cpu(), label.cpu()))

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step(batch, dataloader_idx, "test")

    def _eval_epoch_end(self, stage: str) -> None:
        for bench in self.benchmarks:
            metric: SegMetrics = self.metrics[bench.name]
            if not metric.update_called:
                continue
            res = metric.compute()
            scalars = {k: float(v) for k, v in res.items() if k not in ("per_class_iou", "num_images")}
            for key, value in scalars.items():
                self.log(
                    f"{stage}/{bench.name}/{key}", value, prog_bar=key == "mIoU", add_dataloader_idx=False
                )
            if not self.trainer.sanity_checking:
                entry = dict(scalars)
                entry["per_class_iou"] = per_class_iou_dict(res, bench.class_names)
                entry["num_images"] = int(res["num_images"])
                self.results.setdefault(stage, {})[bench.name] = entry
                self._log_to_wandb(stage, bench, entry)
            metric.reset()
        self._log_samples.clear()

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def _log_to_wandb(self, stage: str, bench: Benchmark, entry: dict[str, Any]) -> None:
        from mrovseg.wandb_logging import log_eval_to_wandb

        log_eval_to_wandb(
            self.loggers, stage, bench.name, bench.class_names, entry, self._log_samples.get(bench.name, [])
        )

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad or name.startswith("backbone."):
                continue
            if param.ndim <= 1 or any(k in name for k in NO_DECAY_KEYWORDS):
                no_decay.append(param)
            else:
                decay.append(param)
        hp = self.hparams
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.lr,
            betas=tuple(hp.betas),
            **adamw_options(decay + no_decay),  # fused on CUDA (mrovseg.speed)
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        power = hp.poly_power
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.0, 1.0 - min(step, total) / total) ** power
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints without CLIP
    def _clip_identity(self) -> dict[str, Any]:
        bb = self.model.backbone
        return {
            "model_name": bb.model_name,
            "pretrained": str(bb.pretrained),
            "width": bb.width,
            "depth": bb.depth,
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("model.backbone.")]:
            del state[key]
        checkpoint["mrovseg_clip"] = self._clip_identity()
        if self.build_config is not None:
            checkpoint["mrovseg_config"] = self.build_config

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_checkpoint_compatible(self, checkpoint)
        state = checkpoint["state_dict"]
        for key, value in self.model.backbone.state_dict().items():
            state[f"model.backbone.{key}"] = value


def check_checkpoint_compatible(
    module: MROVSegModule, checkpoint: dict[str, Any], source: str = "checkpoint"
) -> None:
    """Raises a clear error if a checkpoint's CLIP or architecture differs from ``module``'s."""
    clip = checkpoint.get("mrovseg_clip")
    mine = module._clip_identity()
    if clip is not None and (clip["model_name"], clip["width"], clip["depth"]) != (
        mine["model_name"],
        mine["width"],
        mine["depth"],
    ):
        raise ValueError(
            f"The {source} was trained with CLIP {clip['model_name']} (width {clip['width']}, depth {clip['depth']}) "
            f"but the config builds {mine['model_name']} (width {mine['width']}, depth {mine['depth']}). "
            "Use the same experiment/clip config as for training."
        )
    expected = {k: v.shape for k, v in module.state_dict().items() if not k.startswith("model.backbone.")}
    got = {k: v.shape for k, v in checkpoint["state_dict"].items() if not k.startswith("model.backbone.")}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    if missing or unexpected or mismatched:
        lines = [f"The {source} does not match the configured architecture:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        for k in mismatched[:20]:
            lines.append(f"  shape mismatch {k}: checkpoint {tuple(got[k])} vs model {tuple(expected[k])}")
        lines.append("Use the experiment/model config the checkpoint was trained with.")
        raise ValueError("\n".join(lines))
