"""The one LightningModule base every method shares: vocabularies, the one evaluation path, metrics,
the optimizer and schedule from config, and checkpoints without CLIP.

* Validation / test: each dataloader is one benchmark with its own vocabulary; images are labelled
  with the shared sliding-window routine over ``model.semantic_scores`` and scored against labels at
  original resolution; metrics are logged as ``val/<benchmark>/mIoU`` etc. Each evaluation step returns
  its predictions (:class:`EvalBatchOutput`) for callbacks: label PNGs
  (:class:`mrovseg.training.callbacks.prediction_writer.PredictionWriter`) and W&B overlays
  (:class:`mrovseg.training.callbacks.wandb_logging.WandbEvalLogger`).
* Text embeddings come from the model's text encoder (``model.backbone.encode_vocabulary``), the
  package's one cache: CLIP's text tower runs once per vocabulary.
* Optimisation: ``module.optimizer`` (a ``_partial_`` config, default AdamW lr 2e-4, weight decay 1e-4)
  receives :meth:`SegmentationModule.param_groups` (no weight decay on norms, biases, embeddings and
  queries; CLIP is frozen and never reaches it); ``module.scheduler`` (default poly 0.9) is stepped
  every training step.
* Checkpoints hold the trained parameters only (:mod:`mrovseg.training.checkpoint`).

A method's training is a subclass that adds ``training_step`` (:mod:`mrovseg.training.mrovseg`,
:mod:`~mrovseg.training.ovseg`, :mod:`~mrovseg.training.mgca`); a training-free model is evaluated by
this class itself (``module=evaluate``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch import nn

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.model.inference import refine_scores, sliding_window, upsample_argmax
from mrovseg.training import checkpoint as ckpt_format
from mrovseg.training.metrics import SegMetrics, result_entry, scalar_metrics
from mrovseg.training.optim import DEFAULT_OPTIMIZER, DEFAULT_SCHEDULER, decay_groups
from mrovseg.training.speed import optimizer_options

log = logging.getLogger(__name__)


@dataclass
class EvalBatchOutput:
    """What an evaluation step returns for callbacks: the benchmark and, per image, the inputs and the
    predicted labels at the label's resolution (tensors on the module's device)."""

    benchmark: BenchmarkInfo
    names: list[str] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)
    preds: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)


class SegmentationModule(L.LightningModule):
    """Evaluates any model that ends in per-class scores (``model.semantic_scores``); the base of every
    method's training module, and itself the module of training-free models.

    Args:
        model: the segmentation network (``semantic_scores(windows, text)``, ``backbone``).
        criterion: the method's loss (None for a training-free model).
        templates: prompt templates (each with ``{}``) used for every vocabulary.
        optimizer: ``params -> Optimizer`` (a ``_partial_`` config; default AdamW, lr 2e-4, weight
            decay 1e-4). Its weight decay is not applied to norms, biases, embeddings and queries.
        scheduler: ``(optimizer, total_iters) -> LR scheduler`` stepped every training step
            (a ``_partial_`` config; default the poly decay ``(1 - step / total) ** 0.9``).
        window: sliding-window side at evaluation (the train crop).
        window_overlap: overlap fraction of neighbouring windows.
        window_batch: windows per forward at evaluation.
        flip: test-time augmentation at evaluation: scores averaged with those of the horizontally
            flipped image (2× the forwards; :func:`~mrovseg.model.inference.sliding_window`).
    """

    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module | None = None,
        templates: Sequence[str] = ("a photo of a {}.",),
        optimizer: Callable[..., torch.optim.Optimizer] = DEFAULT_OPTIMIZER,
        scheduler: Callable[..., Any] = DEFAULT_SCHEDULER,
        window: int = 640,
        window_overlap: float = 1 / 3,
        window_batch: int = 4,
        flip: bool = False,
    ) -> None:
        super().__init__()
        # plain data only in hparams (resuming loads checkpoints with weights_only=True); the optimizer
        # and schedule configs are in the checkpoint's build config (mrovseg.training.checkpoint)
        self.save_hyperparameters(ignore=["model", "criterion", "optimizer", "scheduler"])
        self.model = model
        self.criterion = criterion
        self.make_optimizer = optimizer
        self.make_scheduler = scheduler
        self.templates = list(templates)
        self.train_class_names: list[str] | None = None
        self.benchmarks: list[BenchmarkInfo] = []
        self.metrics = nn.ModuleDict()
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self.build_config: dict[str, Any] | None = None  # set by mrovseg.training.checkpoint.build_module

    # ------------------------------------------------------------------ setup
    def configure_vocabularies(
        self, train_class_names: Sequence[str] | None, benchmarks: Sequence[Any]
    ) -> None:
        """Sets the training vocabulary and the evaluation benchmarks (one per dataloader)."""
        self.train_class_names = list(train_class_names) if train_class_names else None
        self.benchmarks = [
            BenchmarkInfo(
                b.name,
                list(b.class_names),
                b.seen_classes,
                getattr(b, "classes_of_interest", None),
                getattr(b, "domain", None),
            )
            for b in benchmarks
        ]
        for b in self.benchmarks:
            if b.name not in self.metrics:
                self.metrics[b.name] = self._new_metric(b, ())

    @staticmethod
    def _new_metric(bench: BenchmarkInfo, regions: Sequence[str]) -> SegMetrics:
        k = len(bench.class_names)
        return SegMetrics(
            k,
            IGNORE_INDEX,
            bench.class_names,
            bench.seen_classes,
            region_names=tuple(regions),
            classes_of_interest=bench.classes_of_interest,
        )

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
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} has no training step: it evaluates a training-free model. Train with a "
            "method's module (module=mrovseg, module=ovseg or module=mgca)."
        )

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict_scores(
        self, image: torch.Tensor, text: torch.Tensor, window_batch: int | None = None
    ) -> torch.Tensor:
        """Per-class scores ``(K, h, w)`` of one image ``(3, h, w)`` by sliding windows
        (``window_batch`` windows per forward; None: the module's)."""

        hp = self.hparams
        scores = sliding_window(
            lambda windows: self.model.semantic_scores(windows, text),
            image,
            hp.window,
            hp.window_overlap,
            window_batch if window_batch is not None else hp.window_batch,
            flip=bool(hp.get("flip", False)),  # checkpoints from before the switch have no flip
        )
        return refine_scores(self.model, image, scores)  # training-free models: softmax, PAMR

    def _eval_step(self, batch: dict[str, Any], dataloader_idx: int) -> EvalBatchOutput:
        bench = self.benchmarks[dataloader_idx]
        text = self.text_embeddings(bench.class_names)
        metric: SegMetrics = self.metrics[bench.name]
        regions_in_batch = tuple(sorted(batch.get("regions", {})))
        if regions_in_batch != metric.region_names and not metric.update_called:
            # samples carry named regions (e.g. "small" objects): score them too
            metric = self.metrics[bench.name] = self._new_metric(bench, regions_in_batch).to(self.device)
        out = EvalBatchOutput(bench)
        for i in range(batch["image"].shape[0]):
            label = batch["label"][i]
            scores = self.predict_scores(batch["image"][i], text)
            pred = upsample_argmax(scores, tuple(label.shape))
            regions = {k: v[i : i + 1] for k, v in batch.get("regions", {}).items()}
            metric.update(pred[None], label[None], regions or None)
            out.names.append(str(batch["name"][i]) if "name" in batch else str(i))
            out.images.append(batch["image"][i])
            out.preds.append(pred)
            out.labels.append(label)
        return out

    def validation_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> EvalBatchOutput:
        return self._eval_step(batch, dataloader_idx)

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> EvalBatchOutput:
        return self._eval_step(batch, dataloader_idx)

    def _eval_epoch_end(self, stage: str) -> None:
        for bench in self.benchmarks:
            metric: SegMetrics = self.metrics[bench.name]
            if not metric.update_called:
                continue
            entry = result_entry(metric.compute(), bench.class_names)
            for key, value in scalar_metrics(entry).items():
                self.log(
                    f"{stage}/{bench.name}/{key}", value, prog_bar=key == "mIoU", add_dataloader_idx=False
                )
            if not self.trainer.sanity_checking:
                self.results.setdefault(stage, {})[bench.name] = entry
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # ------------------------------------------------------------------ optimisation
    def param_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: the trainable parameters outside the frozen CLIP, with and
        without weight decay (:func:`~mrovseg.training.optim.decay_groups`). Methods with more groups
        (other learning rates) override it."""
        return decay_groups(self.model)

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer, total_iters: int) -> Any:
        """``module.scheduler`` called with the optimizer and the run's step count."""
        return self.make_scheduler(optimizer, total_iters=total_iters)

    def configure_optimizers(self) -> dict[str, Any]:
        groups = self.param_groups()
        # fused AdamW on CUDA (mrovseg.training.speed)
        optimizer = self.make_optimizer(groups, **optimizer_options(self.make_optimizer, groups))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = self.make_lr_scheduler(optimizer, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ checkpoints without CLIP
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ckpt_format.drop_clip_weights(checkpoint, self)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        ckpt_format.check_compatible(self, checkpoint)
        ckpt_format.restore_clip_weights_of(checkpoint, self)
