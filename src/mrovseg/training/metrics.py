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

Values are percentages (0–100). The confusion matrices are int64 states reduced by ``sum``, so
torchmetrics synchronises them across DDP processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

from mrovseg.constants import IGNORE_INDEX


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
        self.add_state("num_images", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @staticmethod
    def _state(region: str) -> str:
        return f"confmat_{region}" if region else "confmat"

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
        preds, target = preds.long().reshape(-1), target.long().reshape(-1)
        valid = target != self.ignore_index
        preds_v, target_v = preds[valid], target[valid]
        if preds_v.numel():
            lo, hi = torch.aminmax(torch.cat([preds_v, target_v]))
            if lo < 0 or hi >= self.num_classes:
                raise ValueError(f"labels must lie in [0, {self.num_classes}), got [{int(lo)}, {int(hi)}]")
        self.confmat += self._confmat(preds_v, target_v)
        self.num_images += shape[0] if len(shape) == 3 else 1
        for name, mask in (regions or {}).items():
            if name not in self.region_names:
                raise KeyError(f"unknown region {name!r}; declared: {self.region_names}")
            if mask.shape != shape:
                raise ValueError(f"region {name!r} has shape {tuple(mask.shape)}")
            keep = valid & mask.reshape(-1).to(valid.device, torch.bool)
            state = self._state(name)
            setattr(self, state, getattr(self, state) + self._confmat(preds[keep], target[keep]))

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
        return result


def per_class_iou_dict(result: Mapping[str, Tensor], class_names: Sequence[str]) -> dict[str, float]:
    """``{class name: IoU in percent}`` from :meth:`SegMetrics.compute`'s result (NaN = absent)."""
    iou = result["per_class_iou"]
    if len(class_names) != len(iou):
        raise ValueError(f"{len(class_names)} names for {len(iou)} classes")
    return {name: float(v) for name, v in zip(class_names, iou.tolist())}
