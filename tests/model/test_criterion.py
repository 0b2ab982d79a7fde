"""Tests for the set criterion (Mask2Former losses) and `targets_from_semantic`."""

import re

import numpy as np
import pytest
import torch

from mrovseg.constants import IGNORE_INDEX
from mrovseg.model import criterion as criterion_module
from mrovseg.model.criterion import SetCriterion, targets_from_semantic, uncertain_points
from mrovseg.model.matcher import HungarianMatcher, PixelGrid, pixel_centres


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def _every_pixel(h: int, w: int) -> PixelGrid:
    """The sampler of ``criterion=grid``: all pixel centres of an h × w grid for every mask."""
    return PixelGrid(h, w)


class FixedMatcher:
    def __init__(self, indices):
        self.indices = [(torch.tensor(p), torch.tensor(t)) for p, t in indices]

    def __call__(self, outputs, targets):
        return self.indices


def _outputs(batch=2, queries=3, classes=2, size=4, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, queries, classes + 1, generator=g).requires_grad_(requires_grad)
    masks = torch.randn(batch, queries, size, size, generator=g).requires_grad_(requires_grad)
    return {"pred_logits": logits, "pred_masks": masks}


def test_targets_from_semantic_exact_masks():
    labels = torch.tensor([[[0, 3, IGNORE_INDEX], [3, 3, 0]], [[IGNORE_INDEX] * 3, [IGNORE_INDEX] * 3]])
    first, second = targets_from_semantic(labels)
    assert first["labels"].tolist() == [0, 3] and first["labels"].dtype == torch.int64
    assert first["masks"].dtype == torch.float32
    assert first["masks"].tolist() == [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [1, 1, 0]]]
    assert first["masks"].sum(0)[0, 2] == 0  # the ignore pixel belongs to no mask
    assert second["labels"].numel() == 0 and second["masks"].shape == (0, 2, 3)
    with pytest.raises(ValueError):
        targets_from_semantic(torch.tensor([[[-2, 0]]]))


def test_each_term_equals_hand_computation():
    outputs = _outputs()
    targets = [
        {"labels": torch.tensor([1, 0]), "masks": (torch.rand(2, 4, 4) > 0.5).float()},
        {"labels": torch.tensor([1]), "masks": (torch.rand(1, 4, 4) > 0.5).float()},
    ]
    matches = [([2, 0], [0, 1]), ([1], [0])]  # image 0: q2→t0, q0→t1; image 1: q1→t0
    crit = SetCriterion(matcher=FixedMatcher(matches), void_weight=0.1, point_sampler=_every_pixel(4, 4))
    losses = crit(outputs, targets)

    logits = outputs["pred_logits"].double().numpy()
    masks = outputs["pred_masks"].double().numpy()
    num_masks = 3.0
    nll_sum = weight_sum = bce = dice = 0.0
    for b in range(2):
        qs, ts = matches[b]
        for q in range(3):
            cls = int(targets[b]["labels"][ts[qs.index(q)]]) if q in qs else 2  # 2 = void
            w = 1.0 if cls != 2 else 0.1
            log_prob = logits[b, q] - np.log(np.exp(logits[b, q]).sum())
            nll_sum += -w * log_prob[cls]
            weight_sum += w
        for q, t in zip(qs, ts):
            x, y = masks[b, q].ravel(), targets[b]["masks"][t].double().numpy().ravel()
            bce += np.mean(y * _softplus(-x) + (1 - y) * _softplus(x))
            s = 1 / (1 + np.exp(-x))
            dice += 1 - (2 * (s * y).sum() + 1) / (s.sum() + y.sum() + 1)
    assert losses["loss_ce"].item() == pytest.approx(nll_sum / weight_sum, rel=1e-5)
    assert losses["loss_mask"].item() == pytest.approx(bce / num_masks, rel=1e-5)
    assert losses["loss_dice"].item() == pytest.approx(dice / num_masks, rel=1e-5)
    assert crit.total(losses).item() == pytest.approx(
        2 * nll_sum / weight_sum + 5 * bce / num_masks + 5 * dice / num_masks, rel=1e-5
    )


def test_low_res_predictions_compared_with_full_res_targets_at_same_points():
    # Predictions 2×2, targets 4×4 made of uniform 2×2 blocks; points at the prediction's pixel
    # centres fall on block corners of the target, so both samples are exact.
    pred = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    block = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = block.repeat_interleave(2, 0).repeat_interleave(2, 1)[None]
    crit = SetCriterion(matcher=FixedMatcher([([0], [0])]), point_sampler=_every_pixel(2, 2))
    losses = crit(
        {"pred_logits": torch.zeros(1, 1, 2), "pred_masks": pred},
        [{"labels": torch.tensor([0]), "masks": tgt}],
    )
    x, y = pred.double().numpy().ravel(), block.double().numpy().ravel()
    assert losses["loss_mask"].item() == pytest.approx(
        np.mean(y * _softplus(-x) + (1 - y) * _softplus(x)), rel=1e-5
    )


def test_deep_supervision_keys_total_and_gradients():
    outputs = _outputs(requires_grad=True)
    aux = [_outputs(seed=s, requires_grad=True) for s in (1, 2)]
    outputs["aux_outputs"] = aux
    targets = targets_from_semantic(torch.randint(-1, 2, (2, 8, 8)))
    crit = SetCriterion(matcher=HungarianMatcher(num_points=64), num_points=64)
    losses = crit(outputs, targets)
    terms = ("loss_ce", "loss_mask", "loss_dice")
    assert set(losses) == {f"{t}{s}" for t in terms for s in ("", "_0", "_1")}
    weights = {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}
    expected = sum(weights[re.sub(r"_\d$", "", k)] * v for k, v in losses.items())
    total = crit.total(losses)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    total.backward()
    for out in (outputs, *aux):
        for key in ("pred_logits", "pred_masks"):
            grad = out[key].grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_vocabulary_size_may_change_between_calls():
    crit = SetCriterion(matcher=HungarianMatcher(num_points=32), num_points=32)
    for k in (2, 5):
        targets = targets_from_semantic(torch.randint(0, k, (2, 8, 8)))
        losses = crit(_outputs(classes=k), targets)
        assert all(torch.isfinite(v) for v in losses.values())


def test_no_targets_gives_void_only_ce_and_zero_mask_losses():
    outputs = _outputs(requires_grad=True)
    targets = targets_from_semantic(torch.full((2, 4, 4), IGNORE_INDEX))
    losses = SetCriterion(matcher=HungarianMatcher(num_points=16), num_points=16)(outputs, targets)
    void_nll = -torch.log_softmax(outputs["pred_logits"].detach(), -1)[..., -1].mean()
    assert losses["loss_ce"].item() == pytest.approx(void_nll.item(), rel=1e-6)
    assert losses["loss_mask"].item() == 0 and losses["loss_dice"].item() == 0
    SetCriterion().total(losses).backward()
    assert outputs["pred_logits"].grad.abs().sum() > 0


def test_uncertain_points_prefer_uncertain_region():
    torch.manual_seed(0)
    logits = torch.full((2, 1, 16, 16), 10.0)
    logits[:, :, :, 6:10] = 0.0  # the uncertain vertical band, x in [0.375, 0.625]
    coords = uncertain_points(logits, num_points=200, oversample_ratio=3.0, importance_sample_ratio=0.75)
    assert coords.shape == (2, 200, 2) and coords.min() >= 0 and coords.max() <= 1
    x_important = coords[:, :150, 0]
    assert ((x_important > 0.3) & (x_important < 0.7)).float().mean() > 0.95
    assert ((coords[:, 150:, 0] < 0.3) | (coords[:, 150:, 0] > 0.7)).any()  # the uniform remainder


def test_num_masks_averaged_across_processes(monkeypatch):
    targets = [{"labels": torch.tensor([0, 1])}, {"labels": torch.tensor([], dtype=torch.int64)}]
    assert SetCriterion.num_masks(targets[1:], torch.device("cpu")) == 1.0  # clamped
    dist = criterion_module.dist
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", lambda t: t.add_(4.0))  # the other process has 4 masks
    assert SetCriterion.num_masks(targets, torch.device("cpu")) == 3.0


def test_pixel_grid_serves_both_samplers_and_rejects_empty_grids():
    grid = PixelGrid(3, 2)
    assert torch.equal(grid(999, "cpu"), pixel_centres(3, 2))  # the matcher's call ignores num_points
    per_mask = grid(torch.zeros(4, 1, 7, 7))  # the criterion's call: one grid per mask
    assert per_mask.shape == (4, 6, 2) and torch.equal(per_mask[3], pixel_centres(3, 2))
    assert PixelGrid(5).width == 5
    with pytest.raises(ValueError, match="height and width must be >= 1, got 0 x 4"):
        PixelGrid(0, 4)


def test_grid_criterion_config_is_deterministic_on_the_toy_experiment():
    """``criterion=grid``: both samplers are the train crop's pixel grid; the loss has no random draw."""
    import hydra
    from hydra import compose, initialize_config_dir

    from mrovseg.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["criterion=grid"])
    crit = hydra.utils.instantiate(cfg.criterion)
    assert repr(crit.point_sampler) == repr(crit.matcher.point_sampler) == "PixelGrid(64, 64)"
    outputs = _outputs(batch=2, queries=4, classes=3, size=16, seed=1)
    labels = torch.randint(0, 3, (2, 64, 64), generator=torch.Generator().manual_seed(2))
    targets = targets_from_semantic(labels)
    first = crit(outputs, targets)
    torch.manual_seed(123)  # another global RNG state: same losses
    second = crit(outputs, targets)
    assert all(torch.equal(first[k], second[k]) for k in first)
