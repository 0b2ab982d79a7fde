"""MGCA-style losses on a hand-made similarity matrix, against values computed by hand (docs/mgca.md §3).

The matrix: B = 2 images, M = 3 nouns (nouns 0, 1 from image 0, noun 2 from image 1), N = 2 pixels::

    S[0] = [[0.9, 0.1],      S[1] = [[0.1, 0.6],
            [0.2, 0.5],              [0.7, 0.2],
            [0.3, 0.4]]              [0.8, 0.3]]

Pseudo labels: image 0 pixel 0 → noun 0 (margin 0.7), pixel 1 → noun 1 (margin 0.4); image 1 has one
noun, both pixels → noun 2 (margin +inf).
"""

from __future__ import annotations

import math

import pytest
import torch

from mrovseg.model.mgca.losses import (
    MGCALoss,
    hard_positive_pixels,
    hardest,
    info_nce,
    object_loss,
    pixel_loss,
    pseudo_assign,
    region_loss,
    same_phrase,
)

S = torch.tensor([[[0.9, 0.1], [0.2, 0.5], [0.3, 0.4]], [[0.1, 0.6], [0.7, 0.2], [0.8, 0.3]]])
OWNER = torch.tensor([0, 0, 1])
DISTINCT = torch.eye(3, dtype=torch.bool)


def nce(pos: float, negs: list[float], tau: float = 1.0) -> float:
    """−log e^{pos/τ} / (e^{pos/τ} + Σ e^{n/τ}), by hand."""
    den = math.exp(pos / tau) + sum(math.exp(n / tau) for n in negs)
    return -math.log(math.exp(pos / tau) / den)


def test_pseudo_assign_by_hand() -> None:
    assign, margin = pseudo_assign(S, OWNER)
    assert assign.tolist() == [[0, 1], [2, 2]]
    assert margin[0].tolist() == pytest.approx([0.7, 0.4])
    assert torch.isinf(margin[1]).all() and (margin[1] > 0).all()


def test_pseudo_assign_image_without_nouns() -> None:
    assign, margin = pseudo_assign(S[:, :2], torch.tensor([0, 0]))
    assert assign[1].tolist() == [-1, -1]
    assert (margin[1] == float("-inf")).all()


def test_same_phrase_ignores_case_and_spaces() -> None:
    same = same_phrase(["Red circle", "blue ring", "red  circle"])
    assert same.tolist() == [[True, False, True], [False, True, False], [True, False, True]]


def test_info_nce_by_hand() -> None:
    pos, neg = torch.tensor([0.5]), torch.tensor([[0.1, 0.4, 9.0]])
    mask = torch.tensor([[True, True, False]])
    assert info_nce(pos, neg, mask, 0.5).item() == pytest.approx(nce(0.5, [0.1, 0.4], 0.5), abs=1e-6)


def test_object_loss_by_hand() -> None:
    # image scores = max over pixels: image 0 → (0.9, 0.5, 0.4), image 1 → (0.6, 0.7, 0.8)
    want = (nce(0.9, [0.6]) + nce(0.5, [0.7]) + nce(0.8, [0.4])) / 3
    assert object_loss(S, OWNER, DISTINCT, 1.0, None).item() == pytest.approx(want, abs=1e-6)


def test_object_loss_never_contrasts_an_image_whose_caption_has_the_same_phrase() -> None:
    same = same_phrase(["red circle", "blue ring", "red circle"])  # nouns 0 and 2 are one phrase
    want = (0.0 + nce(0.5, [0.7]) + 0.0) / 3
    assert object_loss(S, OWNER, same, 1.0, None).item() == pytest.approx(want, abs=1e-6)


def test_region_loss_by_hand() -> None:
    assign, _ = pseudo_assign(S, OWNER)
    # R0 = {img0 px0}: (0.9, 0.2, 0.3); R1 = {img0 px1}: (0.1, 0.5, 0.4); R2 = img1 mean: (0.35, 0.45, 0.55)
    want = (nce(0.9, [0.2, 0.3]) + nce(0.5, [0.1, 0.4]) + nce(0.55, [0.35, 0.45])) / 3
    assert region_loss(S, OWNER, DISTINCT, assign, 1.0, None).item() == pytest.approx(want, abs=1e-6)
    hard = (nce(0.9, [0.3]) + nce(0.5, [0.4]) + nce(0.55, [0.45])) / 3  # k = 1: the hardest negative only
    assert region_loss(S, OWNER, DISTINCT, assign, 1.0, 1).item() == pytest.approx(hard, abs=1e-6)


def test_pixel_loss_by_hand() -> None:
    assign, margin = pseudo_assign(S, OWNER)
    # k_pos = 1: noun 2's hard positive is image 1 pixel 1 (0.3 < 0.8); its column is (0.6, 0.2, 0.3)
    want = (nce(0.9, [0.2, 0.3]) + nce(0.5, [0.1, 0.4]) + nce(0.3, [0.6, 0.2])) / 3
    got = pixel_loss(S, OWNER, DISTINCT, assign, margin, 1.0, 1, None, 0.0)
    assert got.item() == pytest.approx(want, abs=1e-6)
    tau = 0.1  # k_neg = 1 and a margin of 0.5 (image 0 pixel 1, margin 0.4, is no longer a positive)
    want = (nce(0.9, [0.3], tau) + nce(0.3, [0.6], tau)) / 2
    got = pixel_loss(S, OWNER, DISTINCT, assign, margin, tau, 1, 1, 0.5)
    assert got.item() == pytest.approx(want, abs=1e-5)


def test_hard_sampling_picks_the_documented_pairs() -> None:
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.3, 0.2, 0.8, 0.4]])
    valid = torch.tensor([[True, False, True, True], [True, True, True, False]])
    # hardest negatives: the k highest-scoring valid entries
    assert hardest(scores, valid, 2).tolist() == [[False, False, True, True], [True, False, True, False]]
    assert hardest(scores, valid, None).tolist() == valid.tolist()
    assert not hardest(scores, valid, 0).any()
    # hard positives: the LEAST similar confident pixels of each noun's pseudo region
    assign, margin = pseudo_assign(S, OWNER)
    sel = hard_positive_pixels(S, OWNER, assign, margin, 1, 0.0)
    assert sel.tolist() == [[True, False], [False, True], [False, True]]
    sel = hard_positive_pixels(S, OWNER, assign, margin, 1, 0.5)
    assert sel.tolist() == [[True, False], [False, False], [False, True]]


def test_mgca_loss_switches_and_sum() -> None:
    sim = S.clone().requires_grad_(True)
    full = MGCALoss(temperature=1.0, k_obj=None, k_reg=None, k_pos=1, k_pix=None)(sim, OWNER, DISTINCT)
    assert set(full) == {"loss_object", "loss_region", "loss_pixel", "loss"}
    total = full["loss_object"] + full["loss_region"] + full["loss_pixel"]
    assert full["loss"].item() == pytest.approx(total.item())
    full["loss"].backward()
    assert sim.grad is not None and sim.grad.abs().sum() > 0
    no_pixel = MGCALoss(pixel_level=False, temperature=1.0, k_obj=None, k_reg=None)(S, OWNER, DISTINCT)
    assert set(no_pixel) == {"loss_object", "loss_region", "loss"}
    with pytest.raises(ValueError, match="At least one"):
        MGCALoss(object_level=False, region_level=False, pixel_level=False)
    with pytest.raises(ValueError, match="pseudo_source"):
        MGCALoss(pseudo_source="teacher")


def test_clip_pseudo_source_uses_the_teacher_matrix() -> None:
    teacher = S.clone()
    teacher[0, 1, 0] = 5.0  # the teacher assigns image 0 pixel 0 to noun 1
    loss = MGCALoss(object_level=False, pixel_level=False, temperature=1.0, k_reg=None, pseudo_source="clip")
    # R0 empty (skipped); R1 = {img0 px0, px1}: mean (0.5, 0.35, 0.35); R2 as before
    want = (nce(0.35, [0.5, 0.35]) + nce(0.55, [0.35, 0.45])) / 2
    assert loss(S, OWNER, DISTINCT, teacher)["loss_region"].item() == pytest.approx(want, abs=1e-6)
