"""Tests for the segmentation metrics (detectron2 v0.6 SemSegEvaluator semantics)."""

import math

import numpy as np
import pytest
import torch

from mrovseg.constants import IGNORE_INDEX
from mrovseg.training.metrics import SegMetrics, per_class_iou_dict


def _reference(preds: np.ndarray, target: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    """Independent per-class loop: IoU (NaN if absent from both), mIoU over GT ∪ pred classes, pixel acc."""
    valid = target != IGNORE_INDEX
    p, t = preds[valid], target[valid]
    iou = np.full(k, np.nan)
    for c in range(k):
        inter = np.sum((p == c) & (t == c))
        union = np.sum((p == c) | (t == c))
        if union:
            iou[c] = inter / union
    return iou * 100, np.nanmean(iou) * 100, np.mean(p == t) * 100


def test_matches_numpy_reference_over_batches():
    g = torch.Generator().manual_seed(0)
    k = 7
    metric = SegMetrics(num_classes=k)
    all_p, all_t = [], []
    for _ in range(3):
        target = torch.randint(0, k - 1, (2, 9, 11), generator=g)  # class 6 never in the GT …
        target[torch.rand(target.shape, generator=g) < 0.2] = IGNORE_INDEX
        preds = torch.randint(0, k - 2, (2, 9, 11), generator=g)  # … class 5 never predicted
        preds[0, 0, :3] = 6  # class 6 predicted only: IoU 0, counted in the mean
        metric.update(preds, target)
        all_p.append(preds.numpy())
        all_t.append(target.numpy())
    iou, miou, acc = _reference(np.concatenate(all_p), np.concatenate(all_t), k)
    out = metric.compute()
    assert out["per_class_iou"][6] == 0
    np.testing.assert_allclose(out["per_class_iou"].numpy(), iou, rtol=1e-12)
    assert out["mIoU"].item() == pytest.approx(miou, rel=1e-12)
    assert out["pixel_acc"].item() == pytest.approx(acc, rel=1e-12)


def test_absent_class_is_nan_and_ignore_pixels_excluded():
    metric = SegMetrics(num_classes=3)
    target = torch.tensor([[[0, 0, IGNORE_INDEX, IGNORE_INDEX]]])
    preds = torch.tensor([[[0, 1, 2, 2]]])  # class 2 only predicted on ignore pixels
    metric.update(preds, target)
    out = metric.compute()
    assert out["per_class_iou"][0].item() == pytest.approx(50.0)
    assert out["per_class_iou"][1].item() == 0.0
    assert math.isnan(out["per_class_iou"][2].item())
    assert out["mIoU"].item() == pytest.approx(25.0)
    assert out["pixel_acc"].item() == pytest.approx(50.0)
    names = per_class_iou_dict(out, ["a", "b", "c"])
    assert names["a"] == pytest.approx(50.0) and names["b"] == 0.0 and math.isnan(names["c"])


def test_base_novel_and_harmonic_iou():
    # Classes 0, 1 seen; 2, 3 unseen. IoU = TP / (GT + pred − TP):
    # c0 2/(2+3−2) = 2/3, c1 1/(2+2−1) = 1/3, c2 1/(3+1−1) = 1/3, c3 0/(1+2) = 0.
    target = torch.tensor([[[0, 0, 1, 1, 2, 2, 2, 3]]])
    preds = torch.tensor([[[0, 0, 1, 0, 2, 3, 3, 1]]])
    metric = SegMetrics(num_classes=4, seen_classes=[0, 1])
    metric.update(preds, target)
    out = metric.compute()
    iou = [2 / 3, 1 / 3, 1 / 3, 0.0]
    np.testing.assert_allclose(out["per_class_iou"].numpy(), np.array(iou) * 100)
    base, novel = (iou[0] + iou[1]) / 2 * 100, (iou[2] + iou[3]) / 2 * 100
    assert out["base_mIoU"].item() == pytest.approx(base)
    assert out["novel_mIoU"].item() == pytest.approx(novel)
    assert out["hIoU"].item() == pytest.approx(2 * base * novel / (base + novel))

    zero_novel = SegMetrics(num_classes=4, seen_classes=[0, 1])
    zero_novel.update(torch.tensor([[[0, 1, 0]]]), torch.tensor([[[0, 1, 2]]]))
    assert zero_novel.compute()["novel_mIoU"].item() == 0 and zero_novel.compute()["hIoU"].item() == 0


def test_region_miou_restricted_to_region_pixels():
    target = torch.tensor([[[0, 0, 1, 1, 2, IGNORE_INDEX]]])
    preds = torch.tensor([[[0, 1, 1, 2, 2, 0]]])
    small = torch.tensor([[[False, False, True, True, False, True]]])
    metric = SegMetrics(num_classes=3, region_names=("small",))
    metric.update(preds, target, regions={"small": small})
    metric.update(preds, target)  # batches without regions only count for the whole image
    out = metric.compute()
    # Inside the region (ignore pixel dropped): target [1, 1], pred [1, 2] → c1 IoU 1/2; c2 only
    # predicted there, so it does not enter the region mean (classes present in the region's GT).
    assert out["small_mIoU"].item() == pytest.approx(50.0)
    # Whole image over both updates: c0 1/2, c1 1/3, c2 1/2.
    assert out["mIoU"].item() == pytest.approx((1 / 2 + 1 / 3 + 1 / 2) / 3 * 100)


def test_states_sum_like_ddp_and_reset():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(-1, 5, (4, 6, 6), generator=g)
    preds = torch.randint(0, 5, (4, 6, 6), generator=g)
    whole, a, b = (SegMetrics(5, region_names=("r",)) for _ in range(3))
    region = torch.rand(4, 6, 6, generator=g) > 0.5
    whole.update(preds, target, {"r": region})
    a.update(preds[:2], target[:2], {"r": region[:2]})
    b.update(preds[2:], target[2:], {"r": region[2:]})
    a.merge_state(b)  # the same `sum` reduction DDP synchronisation applies
    assert torch.equal(a.confmat, whole.confmat) and torch.equal(a.confmat_r, whole.confmat_r)
    assert a.confmat.dtype == torch.int64
    whole.reset()
    assert whole.confmat.sum() == 0


def test_invalid_inputs_raise():
    metric = SegMetrics(num_classes=3, region_names=("small",))
    with pytest.raises(ValueError):
        metric.update(torch.tensor([[[3]]]), torch.tensor([[[0]]]))
    with pytest.raises(ValueError):
        metric.update(torch.tensor([[[0]]]), torch.tensor([[[0, 1]]]))
    with pytest.raises(KeyError):
        metric.update(torch.tensor([[[0]]]), torch.tensor([[[0]]]), {"large": torch.tensor([[[True]]])})
    with pytest.raises(ValueError):
        SegMetrics(num_classes=3, class_names=["a"])


def test_summary_keys_are_the_scalar_keys_of_a_metrics_entry() -> None:
    from mrovseg.training.metrics import SUMMARY_KEYS
    from tests.helpers import SCALAR_KEYS

    assert set(SUMMARY_KEYS) == SCALAR_KEYS
