"""Per-image statistics of the error analysis, gathered during the one evaluation path.

:class:`AnalysisCollector` is a Lightning callback on the test loop of
:class:`~mrovseg.training.base.SegmentationModule`: every test step returns its per-image predictions and
labels (:class:`~mrovseg.training.base.EvalBatchOutput`), and the collector folds each image into a few
confusion matrices per benchmark (:class:`BenchmarkAnalysis`) — no prediction map is kept. Under DDP the
matrices are summed over processes at the end of the test epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from mrovseg.analysis.components import class_components, structure
from mrovseg.analysis.oracle import gt_masks_model_classes, model_masks_gt_classes
from mrovseg.analysis.proposals import proposal_ids, segments_from_ids
from mrovseg.analysis.size import DEFAULT_EDGES, check_edges, size_bins
from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo


@dataclass(frozen=True)
class AnalysisOptions:
    """Settings of the analysis (``analysis:`` in ``conf/analyze.yaml``).

    Attributes:
        size_bins: edges of the object-size bins, fractions of the image area (:mod:`~mrovseg.analysis.size`).
        top_confusions: rows of the table of largest confusions.
        heatmap_classes: the confusion heat map shows this many most frequent ground-truth classes.
        connectivity: 4 or 8, the neighbourhood of connected components (objects, segments).
        proposals: for mask-based models, also the oracle on the query proposals
            (:mod:`~mrovseg.analysis.proposals`; one more forward pass per window).
    """

    size_bins: tuple[float, ...] = DEFAULT_EDGES
    top_confusions: int = 20
    heatmap_classes: int = 20
    connectivity: int = 8
    proposals: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_bins", check_edges(self.size_bins))
        structure(self.connectivity)  # raises for anything but 4 or 8
        for name in ("top_confusions", "heatmap_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"analysis.{name} must be a positive integer, got {value!r}.")

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> AnalysisOptions:
        """Options from a config node (None: the defaults); unknown keys are an error."""
        values = dict(node or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown analysis options {unknown}; known: {sorted(known)}.")
        if "size_bins" in values:
            values["size_bins"] = tuple(values["size_bins"])
        return cls(**values)


def confusion(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 ``(K, K)`` counts of (target, prediction) pairs (rows: target) over 1-D pixel arrays."""
    k = num_classes
    return np.bincount(target * k + pred, minlength=k * k).reshape(k, k).astype(np.int64)


@dataclass
class BenchmarkAnalysis:
    """The analysis statistics of one benchmark, summed over its images.

    Attributes:
        benchmark: name, vocabulary and seen classes.
        options: the analysis settings.
        confmat: ``(K, K)`` confusion of the model's prediction (rows: ground truth), as the metrics'.
        oracle_gt_masks: ``(K, K)`` confusion of the ground-truth-masks / model-classes oracle.
        oracle_model_masks: ``(K, K)`` confusion of the model-masks / ground-truth-classes oracle.
        size_confmat: ``(B, K, K)`` confusion restricted to the pixels of the objects of each size bin.
        size_objects: ``(B,)`` number of objects per size bin.
        gt_segments: number of ground-truth segments (objects) over all images.
        pred_segments: number of segments of the predicted label maps over all images.
        oracle_proposals: ``(K, K)`` confusion of the model-proposals / ground-truth-classes oracle.
        proposal_segments: number of proposals (segments) over the images that have them.
        proposal_images: images whose proposals were scored (0: the model has none).
        num_images: images folded in.
    """

    benchmark: BenchmarkInfo
    options: AnalysisOptions = field(default_factory=AnalysisOptions)
    confmat: np.ndarray = field(init=False)
    oracle_gt_masks: np.ndarray = field(init=False)
    oracle_model_masks: np.ndarray = field(init=False)
    size_confmat: np.ndarray = field(init=False)
    size_objects: np.ndarray = field(init=False)
    gt_segments: int = 0
    pred_segments: int = 0
    oracle_proposals: np.ndarray = field(init=False)
    proposal_segments: int = 0
    proposal_images: int = 0
    num_images: int = 0

    #: The summed statistics (reduced over processes under DDP).
    COUNTS = (
        "confmat",
        "oracle_gt_masks",
        "oracle_model_masks",
        "size_confmat",
        "size_objects",
        "gt_segments",
        "pred_segments",
        "oracle_proposals",
        "proposal_segments",
        "proposal_images",
        "num_images",
    )

    def __post_init__(self) -> None:
        k, bins = self.num_classes, len(self.options.size_bins) + 1
        self.confmat = np.zeros((k, k), dtype=np.int64)
        self.oracle_gt_masks = np.zeros((k, k), dtype=np.int64)
        self.oracle_model_masks = np.zeros((k, k), dtype=np.int64)
        self.oracle_proposals = np.zeros((k, k), dtype=np.int64)
        self.size_confmat = np.zeros((bins, k, k), dtype=np.int64)
        self.size_objects = np.zeros(bins, dtype=np.int64)

    @property
    def num_classes(self) -> int:
        return len(self.benchmark.class_names)

    def update(self, pred: np.ndarray, label: np.ndarray, proposals: np.ndarray | None = None) -> None:
        """Folds in one image: ``pred`` ``(H, W)`` in ``[0, K)``, ``label`` ``(H, W)`` in ``[0, K) ∪ {IGNORE_INDEX}``
        and, for a mask-based model, ``proposals`` ``(H, W)``, the proposal id of every pixel."""
        if pred.shape != label.shape:
            raise ValueError(f"prediction {pred.shape} and label {label.shape} of one image differ")
        k = self.num_classes
        pred, label = pred.astype(np.int64), label.astype(np.int64)
        valid = label != IGNORE_INDEX
        for what, values in (("prediction", pred), ("label", label[valid])):
            if values.size and (values.min() < 0 or values.max() >= k):
                raise ValueError(
                    f"{self.benchmark.name}: {what} values must lie in [0, {k}), got "
                    f"[{values.min()}, {values.max()}]"
                )
        target, predicted = label[valid], pred[valid]
        self.confmat += confusion(target, predicted, k)
        self.num_images += 1

        objects = class_components(label, valid, self.options.connectivity)
        self.gt_segments += objects.count
        bins = size_bins(objects.sizes, label.size, self.options.size_bins)
        self.size_objects += np.bincount(bins, minlength=len(self.size_objects))
        pixel_bin = bins[objects.ids[valid] - 1]  # every valid pixel lies in one object
        self.size_confmat += self._size_counts(pixel_bin, target, predicted)

        oracle = gt_masks_model_classes(pred, label, k, gt_segments=objects)
        self.oracle_gt_masks += confusion(target, oracle[valid], k)
        segments = class_components(pred, None, self.options.connectivity)
        self.pred_segments += segments.count
        oracle = model_masks_gt_classes(pred, label, k, pred_segments=segments)
        self.oracle_model_masks += confusion(target, oracle[valid], k)
        if proposals is not None:
            if proposals.shape != label.shape:
                raise ValueError(
                    f"proposal map {proposals.shape} and label {label.shape} of one image differ"
                )
            segments = segments_from_ids(proposals)
            self.proposal_segments += segments.count
            self.proposal_images += 1
            oracle = model_masks_gt_classes(pred, label, k, pred_segments=segments)
            self.oracle_proposals += confusion(target, oracle[valid], k)

    def _size_counts(self, pixel_bin: np.ndarray, target: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """``(B, K, K)`` confusion of the pixels of each size bin."""
        k, bins = self.num_classes, len(self.size_objects)
        flat = (pixel_bin * k + target) * k + pred
        return np.bincount(flat, minlength=bins * k * k).reshape(bins, k, k).astype(np.int64)


class AnalysisCollector(L.Callback):
    """Folds every test image into its benchmark's :class:`BenchmarkAnalysis`.

    Args:
        options: the analysis settings.

    Attributes:
        analyses: ``benchmark name → BenchmarkAnalysis``, in the order of the test dataloaders.
    """

    def __init__(self, options: AnalysisOptions | None = None) -> None:
        self.options = options or AnalysisOptions()
        self.analyses: dict[str, BenchmarkAnalysis] = {}
        self._no_proposals: set[str] = set()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for bench in getattr(pl_module, "benchmarks", []):
            self.analyses[bench.name] = BenchmarkAnalysis(bench, self.options)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        bench = outputs.benchmark
        if bench.name not in self.analyses:
            self.analyses[bench.name] = BenchmarkAnalysis(bench, self.options)
        analysis = self.analyses[bench.name]
        for image, pred, label in zip(outputs.images, outputs.preds, outputs.labels):
            proposals = self._proposals(trainer, pl_module, bench, image, tuple(label.shape))
            analysis.update(pred.cpu().numpy(), label.cpu().numpy(), proposals)

    def _proposals(
        self,
        trainer: L.Trainer,
        pl_module: Any,
        bench: BenchmarkInfo,
        image: torch.Tensor,
        size: tuple[int, int],
    ) -> np.ndarray | None:
        """The proposal id map of one image at the label's size (None: off, or a model without proposals)."""
        if not self.options.proposals or bench.name in self._no_proposals:
            return None
        text = pl_module.text_embeddings(bench.class_names)
        hp = pl_module.hparams
        with trainer.precision_plugin.forward_context():  # the precision the evaluation ran in
            ids = proposal_ids(
                lambda windows: pl_module.model(windows, text),
                image,
                hp.window,
                hp.window_overlap,
                hp.window_batch,
            )
        if ids is None:
            self._no_proposals.add(bench.name)
            return None
        if tuple(ids.shape) != size:
            ids = F.interpolate(ids[None, None].float(), size=size, mode="nearest")[0, 0].long()
        return ids.cpu().numpy()

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size <= 1:
            return
        for analysis in self.analyses.values():  # the same benchmarks, in the same order, on every process
            for name in BenchmarkAnalysis.COUNTS:
                value = torch.as_tensor(np.asarray(getattr(analysis, name)), device=pl_module.device)
                total = trainer.strategy.reduce(value, reduce_op="sum").cpu().numpy()
                setattr(analysis, name, total if total.ndim else int(total))
