"""Tests for the hierarchical mask decoder (Eq. 4-5) and its single-scale baseline."""

from __future__ import annotations

import pytest
import torch

from mrovseg.model.mrovseg.mask_decoder import MaskDecoder

DIM, MASK_DIM = 16, 8


def _inputs(num_fused: int, grid: tuple[int, int] = (5, 7)) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(num_fused)
    visual = torch.randn(2, DIM, *grid, generator=g)
    return visual, [torch.randn(2, DIM, *grid, generator=g) for _ in range(num_fused)]


@pytest.mark.parametrize("num_fused", [1, 2, 3, 5])
def test_hierarchical_pixel_features_are_at_four_times_the_token_grid(num_fused: int) -> None:
    torch.manual_seed(0)
    decoder = MaskDecoder(DIM, MASK_DIM, hierarchical=True)
    visual, fused = _inputs(num_fused)
    pixel = decoder.pixel_features(visual, fused)
    assert pixel.shape == (2, MASK_DIM, 20, 28)
    pixel.mean().backward()
    assert all(p.grad is not None for p in decoder.parameters())


def test_hierarchical_decoder_uses_the_three_deepest_fusion_layers() -> None:
    torch.manual_seed(0)
    decoder = MaskDecoder(DIM, MASK_DIM, hierarchical=True)
    visual, fused = _inputs(5)
    with torch.no_grad():
        base = decoder.pixel_features(visual, fused)
        for i in range(5):
            changed = decoder.pixel_features(
                visual, [f + torch.randn_like(f) if j == i else f for j, f in enumerate(fused)]
            )
            assert torch.equal(base, changed) == (i < 2), i  # only fused[2:] (the deepest three) are used


def test_single_scale_decoder_stays_on_the_token_grid_and_ignores_fused() -> None:
    torch.manual_seed(0)
    decoder = MaskDecoder(DIM, MASK_DIM, hierarchical=False)
    visual, fused = _inputs(3)
    with torch.no_grad():
        pixel = decoder.pixel_features(visual, fused)
        assert pixel.shape == (2, MASK_DIM, 5, 7)
        assert torch.equal(pixel, decoder.pixel_features(visual, [f * 2 for f in fused]))


def test_masks_are_query_pixel_dot_products() -> None:
    g = torch.Generator().manual_seed(0)
    queries = torch.randn(2, 3, MASK_DIM, generator=g)
    pixel = torch.randn(2, MASK_DIM, 4, 5, generator=g)
    masks = MaskDecoder.masks(queries, pixel)
    assert masks.shape == (2, 3, 4, 5)
    for b in range(2):
        for q in range(3):
            expected = (queries[b, q].view(-1, 1, 1) * pixel[b]).sum(0)
            torch.testing.assert_close(masks[b, q], expected)
