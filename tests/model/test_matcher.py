"""Tests for the Hungarian matcher (Mask2Former-style matching costs)."""

import itertools
import math

import numpy as np
import pytest
import torch

from mrovseg.model.matcher import HungarianMatcher, PixelGrid, pixel_centres, point_sample


def _all_pixels(h: int, w: int) -> PixelGrid:
    """The matcher's sampler under ``criterion=grid``: every pixel centre of an h × w grid."""
    return PixelGrid(h, w)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def test_pixel_centres_sample_exact_values():
    maps = torch.randn(2, 1, 3, 5)
    coords = pixel_centres(3, 5).expand(2, -1, -1)
    sampled = point_sample(maps, coords)
    torch.testing.assert_close(sampled, maps.reshape(2, 1, -1))


def test_class_cost_optimum_that_greedy_misses():
    # p(q0) = [.6, .4, 0], p(q1) = [.55, .05, .4]; targets have classes 0 and 1.
    # Greedy (q0 takes its best target 0) costs -.65; the optimum q0→1, q1→0 costs -.95.
    probs = torch.tensor([[[0.6, 0.4, 1e-6], [0.55, 0.05, 0.4]]])
    outputs = {"pred_logits": probs.log(), "pred_masks": torch.zeros(1, 2, 4, 4)}
    targets = [{"labels": torch.tensor([0, 1]), "masks": torch.zeros(2, 4, 4)}]
    matcher = HungarianMatcher(cost_class=1.0, cost_mask=0.0, cost_dice=0.0)
    ((pred_idx, tgt_idx),) = matcher(outputs, targets)
    assert pred_idx.dtype == tgt_idx.dtype == torch.int64
    assert pred_idx.tolist() == [0, 1]
    assert tgt_idx.tolist() == [1, 0]


def test_mask_cost_recovers_permutation_across_resolutions():
    # Targets at 32², predictions (logits ±8) at 8²: query 3 ↔ target 0, query 0 ↔ 1, query 4 ↔ 2.
    torch.manual_seed(0)
    coarse = torch.zeros(3, 8, 8)
    coarse[0, :4] = 1  # top half
    coarse[1, :, :3] = 1  # left strip
    coarse[2, 5:, 4:] = 1  # bottom-right block
    tgt = coarse.repeat_interleave(4, 1).repeat_interleave(4, 2)
    pred = torch.full((5, 8, 8), -8.0)
    for q, t in [(3, 0), (0, 1), (4, 2)]:
        pred[q] = 16 * coarse[t] - 8
    outputs = {"pred_logits": torch.zeros(1, 5, 4), "pred_masks": pred[None]}
    targets = [{"labels": torch.tensor([2, 0, 1]), "masks": tgt}]
    ((pred_idx, tgt_idx),) = HungarianMatcher(num_points=2000)(outputs, targets)
    assert dict(zip(pred_idx.tolist(), tgt_idx.tolist())) == {0: 1, 3: 0, 4: 2}


def test_cost_matrix_equals_hand_computation():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 4)
    masks = torch.randn(1, 3, 4, 5)
    tgt = (torch.rand(2, 4, 5) > 0.5).float()
    labels = torch.tensor([2, 0])
    matcher = HungarianMatcher(2.0, 5.0, 5.0, point_sampler=_all_pixels(4, 5))
    (cost,) = matcher.cost_matrices(
        {"pred_logits": logits, "pred_masks": masks}, [{"labels": labels, "masks": tgt}]
    )
    lg, x, t = (
        logits[0].double().numpy(),
        masks[0].reshape(3, -1).double().numpy(),
        tgt.reshape(2, -1).numpy(),
    )
    prob = np.exp(lg) / np.exp(lg).sum(-1, keepdims=True)
    expected = np.zeros((3, 2))
    for q, j in itertools.product(range(3), range(2)):
        bce = np.mean(t[j] * _softplus(-x[q]) + (1 - t[j]) * _softplus(x[q]))
        s = 1 / (1 + np.exp(-x[q]))
        dice = 1 - (2 * (s * t[j]).sum() + 1) / (s.sum() + t[j].sum() + 1)
        expected[q, j] = -2.0 * prob[q, labels[j]] + 5.0 * bce + 5.0 * dice
    np.testing.assert_allclose(cost.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_matches_brute_force_on_random_case():
    torch.manual_seed(2)
    outputs = {"pred_logits": torch.randn(2, 5, 4), "pred_masks": torch.randn(2, 5, 6, 6)}
    targets = [
        {"labels": torch.tensor([0, 1, 2]), "masks": (torch.rand(3, 6, 6) > 0.5).float()},
        {"labels": torch.tensor([3, 1]), "masks": (torch.rand(2, 6, 6) > 0.5).float()},
    ]
    matcher = HungarianMatcher(point_sampler=_all_pixels(6, 6))
    costs = matcher.cost_matrices(outputs, targets)
    for cost, (pred_idx, tgt_idx) in zip(costs, matcher(outputs, targets)):
        n = cost.shape[1]
        assert len(pred_idx) == n and sorted(tgt_idx.tolist()) == list(range(n))
        assert pred_idx.tolist() == sorted(pred_idx.tolist())
        best = min(
            sum(cost[q, j].item() for j, q in enumerate(qs)) for qs in itertools.permutations(range(5), n)
        )
        assert math.isclose(cost[pred_idx, tgt_idx].sum().item(), best, rel_tol=1e-6, abs_tol=1e-6)


def test_image_without_targets_and_no_grad():
    pred_logits = torch.randn(2, 4, 3, requires_grad=True)
    pred_masks = torch.randn(2, 4, 8, 8, requires_grad=True)
    targets = [
        {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 16, 16)},
        {"labels": torch.tensor([1]), "masks": torch.ones(1, 16, 16)},
    ]
    matcher = HungarianMatcher(num_points=64)
    indices = matcher({"pred_logits": pred_logits, "pred_masks": pred_masks}, targets)
    assert [len(i) for i, _ in indices] == [0, 1]
    assert indices[0][0].dtype == indices[0][1].dtype == torch.int64
    costs = matcher.cost_matrices({"pred_logits": pred_logits, "pred_masks": pred_masks}, targets)
    assert costs[0].shape == (4, 0) and costs[1].shape == (4, 1)
    assert not costs[1].requires_grad


def test_rejects_all_zero_costs():
    with pytest.raises(ValueError):
        HungarianMatcher(0.0, 0.0, 0.0)
