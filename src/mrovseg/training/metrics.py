"""Semantic segmentation metrics: mIoU, pixel accuracy, base/novel/harmonic IoU, region mIoU.

The numbers follow detectron2's ``SemSegEvaluator`` (facebookresearch/detectron2,
``detectron2/evaluation/sem_seg_evaluation.py``) as released in v0.6, the version the
open-vocabulary segmentation literature (and MROVSeg, arXiv 2408.14776) evaluates with:

- one confusion matrix over all evaluated pixels, ignore pixels excluded;
- IoU_c = TP / (GT + Pred − TP); mIoU averages IoU over the classes that occur in the ground truth
  **or** the prediction (a class only ever predicted counts with IoU 0; a class absent from both is
  skipped). detectron2's main branch changed this in July 2022 (commit f3c1bc19) to skip
  predicted-only classes; we keep v0.6 so results compare with published tables;
- pixel accuracy = Σ TP / number of non-ignored pixels.

Open-vocabulary extras: with ``seen_classes``, ``base_mIoU`` / ``novel_mIoU`` average the same way
over the seen / unseen classes and ``hIoU`` is their harmonic mean (0 when either is 0), as in
the zero-shot segmentation literature. Named regions (bool masks, e.g. ``small`` objects) get
their own confusion matrix restricted to the region's pixels; ``<region>_mIoU`` averages over the
classes present in the ground truth inside the region.

Also, where configured: ``coi_mIoU``, the mean over a benchmark's classes of interest (MESS), and
``synonym_mIoU``, mIoU when a pixel of class a predicted as class b counts as correct whenever a and b
share a name (:func:`mrovseg.model.class_names.synonym_pairs`; ADE's "earth, ground" vs "land, ground,
soil"). Every mean metric gets a 95 % bootstrap interval over images (``<metric>_ci95``,
:mod:`mrovseg.training.bootstrap`) from per-image counts kept during the evaluation, so no second pass.

Values are percentages (0–100). The confusion matrices are int64 states reduced by ``sum`` and the
per-image counts list states gathered by ``cat``, so torchmetrics synchronises them across DDP processes
(the bootstrap orders images canonically, so its interval does not depend on the sharding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from mrovseg.constants import IGNORE_INDEX
from mrovseg.model.class_names import synonym_pairs
from mrovseg.training import bootstrap


def _bincount(x: Tensor, minlength: int) -> Tensor:
    """``torch.bincount``, on the CPU when deterministic algorithms forbid the CUDA kernel."""
    if x.is_cuda and torch.are_deterministic_algorithms_enabled():
        return torch.bincount(x.cpu(), minlength=minlength).to(x.device)
    return torch.bincount(x, minlength=minlength)


#: The scalar metrics of a benchmark, in the order they are printed and tabulated (``small`` is the
#: region of the toy world; other regions give ``<region>_mIoU``).
SUMMARY_KEYS: tuple[str, ...] = ("mIoU", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU", "pixel_acc")


def iou_from_confmat(confmat: Tensor) -> Tensor:
    """Per-class IoU (fraction) from a confusion matrix ``(K, K)`` (rows: target, columns: prediction).

    Returns:
        float64 ``(K,)``; NaN for classes absent from both target and prediction, 0 for classes
        only predicted.
    """
    confmat = confmat.double()
    tp = confmat.diagonal()
    union = confmat.sum(0) + confmat.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def _nanmean(values: Tensor) -> Tensor:
    """Mean over non-NaN entries; NaN when there are none."""
    valid = ~values.isnan()
    return values[valid].mean() if valid.any() else values.new_tensor(float("nan"))


class SegMetrics(Metric):
    """Confusion-matrix metrics for semantic segmentation (detectron2 v0.6 ``SemSegEvaluator``).

    Args:
        num_classes: K; predictions and targets take values in ``[0, K)`` (targets also ignore).
        ignore_index: Target value of pixels excluded from every metric.
        class_names: Optional K names, kept as ``self.class_names`` for :func:`per_class_iou_dict`.
        seen_classes: Indices of classes seen in training; enables base/novel/hIoU.
        region_names: Names of the boolean regions that :meth:`update` may receive.
        classes_of_interest: Class indices whose mean IoU is reported as ``coi_mIoU`` (MESS).
        num_resamples: Bootstrap resamples of the 95 % intervals (0: no intervals, no per-image state).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        class_names: Sequence[str] | None = None,
        seen_classes: Sequence[int] | None = None,
        region_names: Sequence[str] = (),
        classes_of_interest: Sequence[int] | None = None,
        num_resamples: int = bootstrap.NUM_RESAMPLES,
    ) -> None:
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.seen_classes = None
        if seen_classes is not None:
            seen = torch.zeros(num_classes, dtype=torch.bool)
            seen[torch.as_tensor(list(seen_classes), dtype=torch.long)] = True
            self.seen_classes = seen
        self.region_names = tuple(region_names)
        for name in ("", *self.region_names):
            if name and not name.isidentifier():
                raise ValueError(f"region name {name!r} is not an identifier")
            zeros = torch.zeros(num_classes, num_classes, dtype=torch.int64)
            self.add_state(self._state(name), default=zeros, dist_reduce_fx="sum")
            if num_resamples > 0:  # (3, K) [tp, gt, pred] per image, for the bootstrap
                self.add_state(self._stats_state(name), default=[], dist_reduce_fx="cat")
        self.add_state("num_images", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.num_resamples = num_resamples
        self.classes_of_interest = None
        if classes_of_interest is not None:
            coi = torch.zeros(num_classes, dtype=torch.bool)
            coi[torch.as_tensor(list(classes_of_interest), dtype=torch.long)] = True
            self.classes_of_interest = coi
        self.synonym_pairs = synonym_pairs(self.class_names) if self.class_names else []

    @staticmethod
    def _state(region: str) -> str:
        return f"confmat_{region}" if region else "confmat"

    @staticmethod
    def _stats_state(region: str) -> str:
        return f"image_stats_{region}" if region else "image_stats"

    def _image_stats(self, name: str) -> Tensor:
        """``(n, 3, K)`` per-image counts of the main confusion (``name=""``) or a region."""
        stats = getattr(self, self._stats_state(name))
        if isinstance(stats, Tensor):  # after a DDP sync: one gathered tensor
            return stats.reshape(-1, 3, self.num_classes)
        if not stats:
            return torch.zeros(0, 3, self.num_classes, dtype=torch.int64)
        return torch.cat([s.reshape(-1, 3, self.num_classes) for s in stats])

    def _confmat(self, preds: Tensor, target: Tensor) -> Tensor:
        """``(K, K)`` counts of (target, prediction) pairs over the given 1-D pixels."""
        k = self.num_classes
        return _bincount(target * k + preds, minlength=k * k).reshape(k, k)

    def update(self, preds: Tensor, target: Tensor, regions: Mapping[str, Tensor] | None = None) -> None:
        """Accumulates a batch.

        Args:
            preds: Predicted class per pixel, ``(B, H, W)`` integers in ``[0, K)``.
            target: Ground truth ``(B, H, W)`` in ``[0, K) ∪ {ignore_index}``.
            regions: Optional ``name → bool (B, H, W)`` for names given at construction.
        """
        if preds.shape != target.shape:
            raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        shape = target.shape
        if len(shape) == 3 and shape[0] > 1 and self.num_resamples > 0:  # per-image counts, one at a time
            for i in range(shape[0]):
                self.update(
                    preds[i : i + 1],
                    target[i : i + 1],
                    {k: v[i : i + 1] for k, v in (regions or {}).items()} or None,
                )
            return
        preds, target = preds.long().reshape(-1), target.long().reshape(-1)
        valid = target != self.ignore_index
        preds_v, target_v = preds[valid], target[valid]
        if preds_v.numel():
            lo, hi = torch.aminmax(torch.cat([preds_v, target_v]))
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(f"labels must lie in [0, {self.num_classes}), got [{int(lo)}, {int(hi)}]")
        self._add("", self._confmat(preds_v, target_v))
        self.num_images += shape[0] if len(shape) == 3 else 1
        for name, mask in (regions or {}).items():
            if name not in self.region_names:
                raise KeyError(f"unknown region {name!r}; declared: {self.region_names}")
            if mask.shape != shape:
                raise ValueError(f"region {name!r} has shape {tuple(mask.shape)}")
            keep = valid & mask.reshape(-1).to(valid.device, torch.bool)
            self._add(name, self._confmat(preds[keep], target[keep]))

    def _add(self, name: str, confmat: Tensor) -> None:
        """Adds one image's (or batch's) confusion matrix to the dataset's, and its counts to the list."""
        state = self._state(name)
        setattr(self, state, getattr(self, state) + confmat)
        if self.num_resamples > 0:
            getattr(self, self._stats_state(name)).append(bootstrap.image_stats(confmat)[None])

    def compute(self) -> dict[str, Tensor]:
        """Returns ``mIoU``, ``pixel_acc``, ``per_class_iou`` (K, NaN = absent), and when configured
        ``base_mIoU``, ``novel_mIoU``, ``hIoU`` and ``<region>_mIoU``; all in percent."""
        confmat = self.confmat
        iou = iou_from_confmat(confmat) * 100.0
        pixel_acc = confmat.diagonal().sum().double() / confmat.sum() * 100.0  # 0/0 = NaN when empty
        result = {
            "mIoU": _nanmean(iou),
            "pixel_acc": pixel_acc,
            "per_class_iou": iou,
            "num_images": self.num_images,
        }
        if self.seen_classes is not None:
            seen = self.seen_classes.to(iou.device)
            base, novel = _nanmean(iou[seen]), _nanmean(iou[~seen])
            result["base_mIoU"], result["novel_mIoU"] = base, novel
            hiou = 2 * base * novel / (base + novel)
            result["hIoU"] = torch.where((base == 0) | (novel == 0), torch.zeros_like(hiou), hiou)
        for name in self.region_names:
            region = getattr(self, self._state(name))
            region_iou = iou_from_confmat(region) * 100.0
            in_gt = region.sum(1) > 0  # classes present in the ground truth inside the region
            result[f"{name}_mIoU"] = _nanmean(region_iou[in_gt])
        if self.classes_of_interest is not None:
            result["coi_mIoU"] = _nanmean(iou[self.classes_of_interest.to(iou.device)])
        if self.synonym_pairs:
            result["synonym_mIoU"] = _nanmean(
                iou_from_confmat(forgive_synonyms(confmat, self.synonym_pairs)) * 100.0
            )
        if self.num_resamples > 0 and int(self.num_images) > 0:
            cis = bootstrap.intervals(
                self._image_stats(""),
                self.seen_classes,
                {
                    r: self._image_stats(r)
                    for r in self.region_names
                    if len(self._image_stats(r)) == int(self.num_images)
                },
                self.classes_of_interest,
                self.num_resamples,
            )
            result.update(
                {
                    k: torch.tensor(v if v is not None else [float("nan")] * 2, dtype=torch.float64)
                    for k, v in cis.items()
                }
            )
            result["ci_resamples"] = torch.tensor(self.num_resamples)
        return result


def forgive_synonyms(confmat: Tensor, pairs: Sequence[tuple[int, int]]) -> Tensor:
    """The confusion matrix with every confusion between two synonymous classes counted as correct:
    for each pair (a, b), pixels of a predicted b move to (a, a) and pixels of b predicted a to (b, b)."""
    out = confmat.clone()
    for a, b in pairs:
        out[a, a] += out[a, b]
        out[b, b] += out[b, a]
        out[a, b] = 0
        out[b, a] = 0
    return out


def per_class_iou_dict(result: Mapping[str, Tensor], class_names: Sequence[str]) -> dict[str, float]:
    """``{class name: IoU in percent}`` from :meth:`SegMetrics.compute`'s result (NaN = absent)."""
    iou = result["per_class_iou"]
    if len(class_names) != len(iou):
        raise ValueError(f"{len(class_names)} names for {len(iou)} classes")
    return {name: float(v) for name, v in zip(class_names, iou.tolist())}


#: Entries of a result that are counts, not metrics (not logged as scalars).
COUNT_KEYS: tuple[str, ...] = ("num_images", "ci_resamples")


def result_entry(result: Mapping[str, Tensor], class_names: Sequence[str]) -> dict[str, Any]:
    """One benchmark's entry of ``metrics.json`` from :meth:`SegMetrics.compute`: the scalar metrics,
    their ``<metric>_ci95`` intervals ``[lo, hi]`` and ``ci_resamples``, ``per_class_iou`` by name and
    ``num_images``."""
    entry: dict[str, Any] = {}
    for key, value in result.items():
        if key == "per_class_iou":
            entry[key] = per_class_iou_dict(result, class_names)
        elif key.endswith("_ci95"):
            entry[key] = [float(x) for x in value]
        elif key in COUNT_KEYS:
            entry[key] = int(value)
        else:
            entry[key] = float(value)
    return entry


def scalar_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics of an entry of :func:`result_entry` (what the loggers receive)."""
    return {k: v for k, v in entry.items() if isinstance(v, float)}
