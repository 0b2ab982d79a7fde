"""Tests for the multi-resolution front-end: layouts, coverage, restore / gather, trunk calls."""

from __future__ import annotations

import math

import pytest
import torch
from einops import rearrange

from mrovseg.model.mrovseg.slicer import Slicer

RATIOS = [0.25, 0.3, 0.5, 0.625, 0.75, 1.0]


def _coordinate_image(height: int, width: int, patch: int, batch: int = 2) -> torch.Tensor:
    """``(B, 3, H, W)`` whose every patch holds (row, column, image index + 1) of that patch."""
    gh, gw = height // patch, width // patch
    rows = torch.arange(gh).repeat_interleave(patch).view(-1, 1).expand(height, width)
    cols = torch.arange(gw).repeat_interleave(patch).view(1, -1).expand(height, width)
    return torch.stack(
        [torch.stack([rows, cols, torch.full_like(rows, b + 1)]) for b in range(batch)]
    ).float()


def test_paper_default_layout_four_slices_of_320() -> None:
    slicer = Slicer(ratio=0.5, clip_size=320, patch_size=16)
    layout = slicer.layout(640, 640)
    assert layout.num_slices == 4
    assert layout.slice_pixels == (320, 320)
    assert layout.grid == (40, 40) and layout.slice_grid == (20, 20)
    assert layout.starts == ((0, 0), (0, 20), (20, 0), (20, 20))
    image = torch.rand(1, 3, 640, 640)
    slices = slicer.slices(image, layout)
    assert slices.shape == (4, 3, 320, 320)
    assert torch.equal(slices[1], image[0, :, :320, 320:])  # row-major: top-right second
    assert torch.equal(slices[2], image[0, :, 320:, :320])
    assert slicer.global_view(image).shape == (1, 3, 320, 320)


def test_ratio_zero_means_no_slices_and_clip_size_view_is_untouched() -> None:
    slicer = Slicer(ratio=0.0, clip_size=32, patch_size=4)
    assert slicer.layout(64, 64) is None
    image = torch.rand(2, 3, 32, 32)
    assert slicer.global_view(image) is image


@pytest.mark.parametrize("ratio", [0.3, 0.625, 0.75, 0.25, 0.5])
@pytest.mark.parametrize(("size", "patch"), [((640, 640), 16), ((64, 64), 4), ((640, 480), 16)])
def test_slices_cover_every_token_and_pixel(ratio: float, size: tuple[int, int], patch: int) -> None:
    slicer = Slicer(ratio=ratio, clip_size=patch * 2, patch_size=patch)
    layout = slicer.layout(*size)
    gh, gw = layout.grid
    # slices per side = ceil(1/p), slice side = p × input side (rounded to whole patches)
    assert layout.num_slices == math.ceil(1 / ratio) ** 2
    assert layout.slice_grid == (round(ratio * gh), round(ratio * gw))
    count = torch.zeros(gh * gw).index_add_(
        0, layout.index(), torch.ones(layout.num_slices * math.prod(layout.slice_grid))
    )
    assert (count >= 1).all(), f"tokens not covered: {(count == 0).sum()}"
    pixels = torch.zeros(size)
    sh, sw = layout.slice_pixels
    for y, x in layout.starts:
        assert y + layout.slice_grid[0] <= gh and x + layout.slice_grid[1] <= gw  # inside the image
        pixels[y * patch : y * patch + sh, x * patch : x * patch + sw] += 1
    assert (pixels >= 1).all()
    if ratio > 0.5:
        assert count.max() > 1  # overlapped slicing


@pytest.mark.parametrize("ratio", RATIOS)
def test_restore_of_gather_is_identity(ratio: float) -> None:
    """Exact: at most two slices overlap per axis, so a token is averaged over 1, 2 or 4 equal copies."""
    slicer = Slicer(ratio=ratio, clip_size=32, patch_size=4)
    layout = slicer.layout(64, 48)
    grid = torch.randn(2, 5, *layout.grid, generator=torch.Generator().manual_seed(0))
    tokens = rearrange(Slicer.gather(grid, layout), "b d (s l) -> (b s) l d", s=layout.num_slices)
    assert tokens.shape == (2 * layout.num_slices, math.prod(layout.slice_grid), 5)
    assert torch.equal(Slicer.restore(tokens, layout), grid)


@pytest.mark.parametrize("ratio", RATIOS)
def test_restore_of_slices_cut_from_a_known_grid_reproduces_it(ratio: float) -> None:
    """Slices of an image whose patches carry their own coordinates restore to the coordinate grid."""
    patch = 4
    slicer = Slicer(ratio=ratio, clip_size=32, patch_size=patch)
    image = _coordinate_image(64, 48, patch)
    layout = slicer.layout(64, 48)
    slices = slicer.slices(image, layout)
    assert slices.shape == (2 * layout.num_slices, 3, *layout.slice_pixels)
    tokens = rearrange(slices[:, :, ::patch, ::patch], "n c h w -> n (h w) c")  # one value per patch
    expected = image[:, :, ::patch, ::patch]
    assert torch.equal(Slicer.restore(tokens, layout), expected)
    # and gather sends the grid to exactly the slices' own token positions
    gathered = rearrange(Slicer.gather(expected, layout), "b c (s l) -> (b s) l c", s=layout.num_slices)
    assert torch.equal(gathered, tokens)


def test_overlapping_tokens_are_averaged() -> None:
    slicer = Slicer(ratio=0.75, clip_size=32, patch_size=4)
    layout = slicer.layout(64, 64)  # 16² grid, 12² slices at 0 and 4 per axis: columns 4..11 overlap
    tokens = torch.stack([torch.full((144, 1), float(i)) for i in range(layout.num_slices)])
    grid = Slicer.restore(tokens, layout)[0, 0]
    assert grid[0, 0] == 0 and grid[0, 15] == 1 and grid[15, 0] == 2 and grid[15, 15] == 3
    assert grid[0, 8] == 0.5  # slices 0 and 1
    assert grid[8, 8] == 1.5  # all four: (0 + 1 + 2 + 3) / 4


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="Slice ratio"):
        Slicer(ratio=1.5)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        Slicer(ratio=0.5, clip_size=30, patch_size=4)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        Slicer(ratio=0.5, clip_size=32, patch_size=4).layout(62, 64)


@pytest.mark.parametrize(("ratio", "calls"), [(0.5, 1), (0.0, 1), (0.25, 2), (0.625, 2), (1.0, 2)])
def test_clip_trunk_runs_once_per_view_size(make_model, text_embeddings, ratio: float, calls: int) -> None:
    """At p = 0.5 (slices of ``clip_size``) global view and slices share ONE trunk pass."""
    model = make_model(slice_ratio=ratio).eval()
    model.backbone.num_trunk_calls = 0
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64), text_embeddings)
    assert model.backbone.num_trunk_calls == calls
