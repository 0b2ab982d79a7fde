"""Oracle label maps: the prediction with one of its two halves (masks, recognition) replaced by the truth.

A segmentation model both groups pixels (masks) and names the groups (recognition). Two oracles tell
which half loses more mIoU (``docs/error-analysis.md``):

* **ground-truth masks, model's classes** — every ground-truth segment (a connected component of one
  ground-truth class) is labelled with the class the model predicts on most of its pixels. The gap to
  the model's mIoU is what perfect masks would add.
* **model's segments, ground-truth classes** — every segment of the model (a connected component of its
  predicted label map) is labelled with the ground-truth class of most of its non-ignored pixels. The
  gap is what perfect recognition would add, for any model.
* **model's proposals, ground-truth classes** (mask-based models: MROVSeg, OVSeg) — the same with the
  model's query proposals as segments (:mod:`mrovseg.analysis.proposals`), the issue's rule for mask
  models; the report's recognition gain uses this row when it exists.

Ties go to the smaller class index. Both maps are scored like the model's own prediction (detectron2
v0.6 mIoU, ignore pixels excluded).
"""

from __future__ import annotations

import numpy as np

from mrovseg.analysis.components import Segments, class_components, majority
from mrovseg.constants import IGNORE_INDEX


def relabel(segments: Segments, votes: np.ndarray, valid: np.ndarray, num_classes: int) -> np.ndarray:
    """Label map where every valid pixel gets its segment's majority of ``votes`` (IGNORE_INDEX elsewhere).

    Args:
        segments: segments covering every valid pixel.
        votes: integer ``(H, W)`` class map in ``[0, num_classes)`` where ``valid``.
        valid: bool ``(H, W)``: the scored pixels (they vote and are relabelled).
        num_classes: K.
    """
    winners = majority(segments, votes, valid, num_classes)
    out = np.full(votes.shape, IGNORE_INDEX, dtype=np.int64)
    ids = segments.ids[valid]
    if (ids == 0).any():
        raise ValueError("every scored pixel must lie in a segment")
    out[valid] = winners[ids - 1]
    return out


def gt_masks_model_classes(
    pred: np.ndarray, label: np.ndarray, num_classes: int, gt_segments: Segments | None = None
) -> np.ndarray:
    """Each ground-truth segment labelled with the model's majority class on it.

    Args:
        pred: ``(H, W)`` predicted classes.
        label: ``(H, W)`` ground truth in ``[0, K) ∪ {IGNORE_INDEX}``.
        num_classes: K.
        gt_segments: the ground truth's segments, if already computed (8-connected otherwise).
    """
    valid = label != IGNORE_INDEX
    segments = gt_segments if gt_segments is not None else class_components(label, valid)
    return relabel(segments, pred, valid, num_classes)


def model_masks_gt_classes(
    pred: np.ndarray, label: np.ndarray, num_classes: int, pred_segments: Segments | None = None
) -> np.ndarray:
    """Each segment of the predicted label map labelled with its majority ground-truth class.

    Args:
        pred: ``(H, W)`` predicted classes (segments are found over all its pixels; ignored ground-truth
            pixels do not vote).
        label: ``(H, W)`` ground truth in ``[0, K) ∪ {IGNORE_INDEX}``.
        num_classes: K.
        pred_segments: the prediction's segments, if already computed (8-connected otherwise).
    """
    valid = label != IGNORE_INDEX
    segments = pred_segments if pred_segments is not None else class_components(pred)
    return relabel(segments, label, valid, num_classes)
