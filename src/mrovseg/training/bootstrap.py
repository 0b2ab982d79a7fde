"""95 % bootstrap intervals of dataset-level segmentation metrics, resampling images.

An evaluation keeps, per image, three count vectors over the K classes (:func:`image_stats`):
true positives ``tp_c`` (pixels of class c labelled c), ground-truth pixels ``gt_c`` and predicted
pixels ``pred_c`` (ignore pixels excluded). A dataset's confusion matrix is the sum of its images', and
every metric here depends on the matrix only through these three sums (IoU_c = tp_c / (gt_c + pred_c −
tp_c)). One bootstrap resample draws n images with replacement, i.e. weights w ~ Multinomial(n, 1/n)
over the n images; its counts are ``w @ stats``, so B resamples are one matrix product, exact (the
dataset-level matrix of the resampled images is recomputed, not an average of per-image scores).

The interval is the percentile interval (2.5th and 97.5th percentiles of the B resampled values) with a
fixed seed. The images are put in a canonical order (sorted by their statistics) before resampling, so
the interval does not depend on the order in which images were evaluated or on how DDP processes
shared them.

Per resample the metrics follow :mod:`mrovseg.training.metrics` exactly: mIoU over classes with a
non-empty union (detectron2 v0.6), base/novel over seen/unseen classes and their harmonic mean,
a region's mIoU over the classes present in the ground truth inside the region, and the mean over
classes of interest (MESS).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Resamples and seed of every interval (written into metrics.json beside the intervals).
NUM_RESAMPLES = 1000
SEED = 0


def image_stats(confmat: Tensor) -> Tensor:
    """``(3, K)`` int64 ``[tp, gt, pred]`` of one image's confusion matrix ``(K, K)`` (rows: target)."""
    return torch.stack([confmat.diagonal(), confmat.sum(1), confmat.sum(0)])


def resample_weights(n: int, num_resamples: int = NUM_RESAMPLES, seed: int = SEED) -> Tensor:
    """``(B, n)`` float64 multiplicities of the n images in each of B resamples with replacement."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (num_resamples, n), generator=g)
    weights = torch.zeros(num_resamples, n, dtype=torch.float64)
    weights.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return weights


def _mean_iou(tp: Tensor, gt: Tensor, pred: Tensor, keep: Tensor) -> Tensor:
    """``(B,)`` mean IoU in percent over the classes where ``keep`` ``(B, K)`` holds (NaN when none)."""
    union = gt + pred - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.zeros_like(tp)) * 100.0
    count = keep.sum(1)
    total = (iou * keep).sum(1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def bootstrap_metrics(
    stats: Tensor,
    seen: Tensor | None = None,
    region_stats: Mapping[str, Tensor] | None = None,
    classes_of_interest: Tensor | None = None,
    num_resamples: int = NUM_RESAMPLES,
    seed: int = SEED,
) -> dict[str, Tensor]:
    """The B resampled values of each metric.

    Args:
        stats: ``(n, 3, K)`` per-image ``[tp, gt, pred]`` (:func:`image_stats`), in evaluation order.
        seen: bool ``(K,)`` of the seen classes (enables ``base_mIoU``, ``novel_mIoU``, ``hIoU``).
        region_stats: ``name → (n, 3, K)`` per-image counts inside each named region, same images.
        classes_of_interest: bool ``(K,)`` (enables ``coi_mIoU``).
        num_resamples, seed: B and the generator's seed.

    Returns:
        ``metric name → (B,)`` float64 values in percent (NaN where a resample has no class to average).
    """
    region_stats = dict(region_stats or {})
    n = stats.shape[0]
    if n == 0:
        return {}
    # one canonical order for all count sets: sort by the image's whole statistics (regions included)
    joint = torch.cat([stats, *region_stats.values()], dim=1)
    order = np.lexsort(joint.reshape(n, -1).cpu().numpy().T[::-1])
    order_t = torch.from_numpy(order.copy())
    weights = resample_weights(n, num_resamples, seed)

    def sums(per_image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s = weights @ per_image[order_t].double().reshape(n, -1).cpu()  # (B, 3K)
        tp, gt, pred = s.reshape(num_resamples, 3, -1).unbind(1)
        return tp, gt, pred

    tp, gt, pred = sums(stats)
    present = (gt + pred - tp) > 0
    out = {"mIoU": _mean_iou(tp, gt, pred, present)}
    if seen is not None:
        seen = seen.cpu().bool()[None]
        base = _mean_iou(tp, gt, pred, present & seen)
        novel = _mean_iou(tp, gt, pred, present & ~seen)
        hiou = 2 * base * novel / (base + novel)
        out["base_mIoU"], out["novel_mIoU"] = base, novel
        out["hIoU"] = torch.where((base == 0) | (novel == 0), torch.zeros_like(hiou), hiou)
    if classes_of_interest is not None:
        out["coi_mIoU"] = _mean_iou(tp, gt, pred, present & classes_of_interest.cpu().bool()[None])
    for name, per_image in region_stats.items():
        rtp, rgt, rpred = sums(per_image)
        out[f"{name}_mIoU"] = _mean_iou(rtp, rgt, rpred, rgt > 0)
    return out


def percentile_interval(values: Tensor, level: float = 0.95) -> list[float] | None:
    """``[lo, hi]`` percentile interval of the finite values (None when there are none)."""
    finite = values[torch.isfinite(values)].numpy()
    if finite.size == 0:
        return None
    tail = (1.0 - level) / 2 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def intervals(stats: Tensor, *args: Any, **kwargs: Any) -> dict[str, list[float] | None]:
    """``{"<metric>_ci95": [lo, hi]}`` for every metric of :func:`bootstrap_metrics` (same arguments)."""
    return {f"{k}_ci95": percentile_interval(v) for k, v in bootstrap_metrics(stats, *args, **kwargs).items()}
