"""Bootstrap intervals of the evaluation metrics, synonym-aware and classes-of-interest scoring."""

import numpy as np
import pytest
import torch

from mrovseg.constants import IGNORE_INDEX
from mrovseg.model.class_names import synonym_pairs
from mrovseg.training import bootstrap
from mrovseg.training.metrics import SegMetrics, forgive_synonyms, iou_from_confmat, result_entry


def _images(n: int, k: int, seed: int = 0, size: int = 12) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        target = torch.randint(0, k, (1, size, size), generator=g)
        preds = torch.where(
            torch.rand(target.shape, generator=g) < 0.6,
            target,
            torch.randint(0, k, target.shape, generator=g),
        )
        target[torch.rand(target.shape, generator=g) < 0.1] = IGNORE_INDEX
        out.append((preds, target))
    return out


def _direct_bootstrap(images, k, seen, num_resamples, seed):
    """The textbook bootstrap: draw image indices, concatenate those images, score the concatenation with
    a fresh SegMetrics (no per-image statistics), in the canonical image order the module uses."""
    metric = SegMetrics(k, num_resamples=0)
    stats = []
    for preds, target in images:
        metric.reset()
        metric.update(preds, target)
        stats.append(bootstrap.image_stats(metric.confmat))
    stats = torch.stack(stats)
    order = np.lexsort(stats.reshape(len(images), -1).numpy().T[::-1])
    weights = bootstrap.resample_weights(len(images), num_resamples, seed)
    values = {"mIoU": [], "base_mIoU": [], "novel_mIoU": [], "hIoU": []}
    for w in weights:
        m = SegMetrics(k, seen_classes=seen, num_resamples=0)
        for pos, count in enumerate(w.long().tolist()):
            for _ in range(count):
                m.update(*images[order[pos]])
        res = m.compute()
        for key in values:
            values[key].append(res[key].item())
    return {key: np.percentile(v, [2.5, 97.5]) for key, v in values.items()}


def test_interval_matches_direct_bootstrap_on_a_small_case():
    k, seen = 5, [0, 1, 2]
    images = _images(9, k)
    metric = SegMetrics(k, seen_classes=seen, num_resamples=40)
    for preds, target in images:
        metric.update(preds, target)
    res = metric.compute()
    direct = _direct_bootstrap(images, k, seen, 40, bootstrap.SEED)
    for key, (lo, hi) in direct.items():
        assert res[f"{key}_ci95"].tolist() == pytest.approx([lo, hi], rel=1e-9), key
        assert lo <= res[key].item() <= hi or key == "hIoU"
    assert int(res["ci_resamples"]) == 40


def test_interval_independent_of_order_batching_and_sharding():
    k = 4
    images = _images(8, k, seed=3)
    one = SegMetrics(k)
    for preds, target in images:
        one.update(preds, target)
    batched = SegMetrics(k)  # two images per update, reversed order
    rev = images[::-1]
    for i in range(0, len(rev), 2):
        batched.update(torch.cat([rev[i][0], rev[i + 1][0]]), torch.cat([rev[i][1], rev[i + 1][1]]))
    shard_a, shard_b = SegMetrics(k), SegMetrics(k)  # two DDP ranks, strided sharding, merged
    for i, (preds, target) in enumerate(images):
        (shard_a if i % 2 else shard_b).update(preds, target)
    shard_a.merge_state(shard_b)
    ref = one.compute()
    for other in (batched, shard_a):
        res = other.compute()
        assert res["mIoU"].item() == pytest.approx(ref["mIoU"].item(), rel=1e-12)
        assert res["mIoU_ci95"].tolist() == ref["mIoU_ci95"].tolist()


def test_region_and_classes_of_interest_intervals():
    k = 3
    target = torch.tensor([[[0, 1, 2, 2]], [[0, 0, 1, 2]]])
    preds = torch.tensor([[[0, 1, 1, 2]], [[0, 1, 1, 2]]])
    small = torch.tensor([[[False, True, True, False]], [[False, False, True, True]]])
    metric = SegMetrics(k, region_names=("small",), classes_of_interest=[1, 2], num_resamples=50)
    metric.update(preds, target, {"small": small})
    res = metric.compute()
    iou = iou_from_confmat(metric.confmat) * 100
    assert res["coi_mIoU"].item() == pytest.approx(iou[1:].mean().item())
    for key in ("mIoU", "coi_mIoU", "small_mIoU"):
        lo, hi = res[f"{key}_ci95"].tolist()
        assert lo <= hi
    # every resample of 2 images scores as image 0 alone, image 1 alone or both: the ends lie within those
    possible = []
    for part in (slice(0, 1), slice(1, 2), slice(0, 2)):
        alone = SegMetrics(k, region_names=("small",), classes_of_interest=[1, 2], num_resamples=0)
        alone.update(preds[part], target[part], {"small": small[part]})
        possible.append(alone.compute())
    for key in ("mIoU", "coi_mIoU", "small_mIoU"):
        values = [p[key].item() for p in possible]
        lo, hi = res[f"{key}_ci95"].tolist()
        assert min(values) - 1e-9 <= lo <= hi <= max(values) + 1e-9, key
        assert lo < hi  # 50 resamples of two different images do not all agree


def test_synonym_pairs_rule():
    names = [
        "earth, ground",
        "land, ground, soil",
        "stool",
        "toilet, stool, throne",
        "pot",
        "Sofa, couch",
        "couch",
    ]
    assert synonym_pairs(names) == [(0, 1), (2, 3), (5, 6)]  # pairwise and case-insensitive
    assert synonym_pairs(["a", "b"]) == []


def test_synonym_mIoU_forgives_only_synonym_confusions():
    names = ["sofa, couch", "couch", "chair"]
    target = torch.tensor([[[0, 0, 1, 1, 2, 2]]])
    preds = torch.tensor([[[1, 0, 0, 1, 0, 2]]])  # sofa↔couch swaps (forgiven), chair→sofa (not)
    metric = SegMetrics(3, class_names=names)
    metric.update(preds, target)
    res = metric.compute()
    fixed = forgive_synonyms(metric.confmat, [(0, 1)])
    assert fixed.tolist() == [[2, 0, 0], [0, 2, 0], [1, 0, 1]]
    # hand: sofa tp 2, gt 2, pred 3 -> 2/3; couch 2/2; chair 1/2
    assert res["synonym_mIoU"].item() == pytest.approx((2 / 3 + 1 + 0.5) / 3 * 100)
    assert res["mIoU"].item() < res["synonym_mIoU"].item()
    assert SegMetrics(3, class_names=["a", "b", "c"]).synonym_pairs == []


def test_result_entry_is_json_ready():
    metric = SegMetrics(2, class_names=["a", "b"], seen_classes=[0], num_resamples=20)
    metric.update(torch.tensor([[[0, 1, 1]]]), torch.tensor([[[0, 1, 0]]]))
    entry = result_entry(metric.compute(), ["a", "b"])
    assert isinstance(entry["mIoU_ci95"], list) and len(entry["mIoU_ci95"]) == 2
    assert entry["ci_resamples"] == 20 and entry["num_images"] == 1
    assert set(entry["per_class_iou"]) == {"a", "b"}
    # one image: every resample is that image, the interval collapses onto the value
    assert entry["mIoU_ci95"] == pytest.approx([entry["mIoU"]] * 2)
