"""Numbers of the report from the analysis's confusion matrices (rows: ground truth, columns: prediction).

IoU is :func:`mrovseg.training.metrics.iou_from_confmat` (detectron2 v0.6: a class counts when it occurs
in the ground truth or the prediction); a region's mIoU averages over the classes present in the ground
truth inside the region, as ``SegMetrics``' ``<region>_mIoU``. Values are percentages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mrovseg.training.metrics import iou_from_confmat


def class_iou(confmat: np.ndarray) -> np.ndarray:
    """Per-class IoU in percent, float64 ``(K,)``; NaN for classes absent from ground truth and prediction."""
    return iou_from_confmat(torch.from_numpy(confmat)).numpy() * 100.0


def _mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def mean_iou(confmat: np.ndarray, seen_classes: Sequence[int] | None = None) -> dict[str, float]:
    """``mIoU`` and, with ``seen_classes``, ``base_mIoU`` / ``novel_mIoU`` (NaN where no class counts)."""
    iou = class_iou(confmat)
    result = {"mIoU": _mean(iou)}
    if seen_classes is not None:
        seen = np.zeros(len(iou), dtype=bool)
        seen[list(seen_classes)] = True
        result["base_mIoU"], result["novel_mIoU"] = _mean(iou[seen]), _mean(iou[~seen])
    return result


def region_scores(confmat: np.ndarray) -> tuple[float, float]:
    """``(pixel accuracy, mIoU)`` of a region's confusion matrix: the share of its pixels labelled
    correctly and the mIoU over the classes present in its ground truth (NaN for an empty region)."""
    total = confmat.sum()
    accuracy = float(np.trace(confmat) / total * 100.0) if total else float("nan")
    iou = class_iou(confmat)
    return accuracy, _mean(iou[confmat.sum(1) > 0])


@dataclass(frozen=True)
class Confusion:
    """Pixels of ground-truth class ``target`` predicted as ``pred``: ``pixels``, and ``share`` (percent)
    of the ground-truth class's pixels."""

    target: int
    pred: int
    pixels: int
    share: float


def top_confusions(confmat: np.ndarray, count: int) -> list[Confusion]:
    """The ``count`` off-diagonal pairs with the largest share of their ground-truth class's pixels
    (ties: more pixels first, then the smaller indices)."""
    totals = confmat.sum(1, keepdims=True)
    shares = np.divide(confmat * 100.0, totals, out=np.zeros(confmat.shape), where=totals > 0)
    np.fill_diagonal(shares, 0.0)
    target, pred = np.nonzero(shares)
    pixels = confmat[target, pred]
    order = np.lexsort((pred, target, -pixels, -shares[target, pred]))[:count]
    return [
        Confusion(int(target[i]), int(pred[i]), int(pixels[i]), float(shares[target[i], pred[i]]))
        for i in order
    ]


def frequent_block(confmat: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The confusion among the ``count`` classes with most ground-truth pixels, row-normalised.

    Returns:
        ``(classes, shares)``: the class indices (most pixels first; only classes with pixels) and
        ``(n, n + 1)`` percentages of each class's ground-truth pixels predicted as each of those
        classes, the last column the rest ("other": predictions outside them). Rows sum to 100.
    """
    totals = confmat.sum(1)
    order = np.argsort(-totals, kind="stable")
    classes = order[totals[order] > 0][:count]
    block = confmat[np.ix_(classes, classes)].astype(np.float64)
    other = totals[classes] - block.sum(1)
    shares = np.concatenate([block, other[:, None]], axis=1) / np.maximum(totals[classes], 1)[:, None] * 100.0
    return classes, shares


def size_rows(size_confmat: np.ndarray, size_objects: np.ndarray) -> list[dict[str, float]]:
    """One row per size bin: ``objects``, ``pixels``, ``pixel_acc`` and ``mIoU`` of the bin's object pixels."""
    rows = []
    for confmat, objects in zip(size_confmat, size_objects):
        accuracy, miou = region_scores(confmat)
        rows.append(
            {"objects": int(objects), "pixels": int(confmat.sum()), "pixel_acc": accuracy, "mIoU": miou}
        )
    return rows
