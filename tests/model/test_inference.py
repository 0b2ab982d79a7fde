"""Tests for semantic inference, the sliding window and the banded upsample-argmax."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from mrovseg.model.inference import semantic_inference, sliding_window, upsample_argmax, window_starts


def test_semantic_inference_equals_hand_computation() -> None:
    # one image, two queries, K = 2 (+ void), 1×2 pixels
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]]])
    masks = torch.tensor([[[[0.0, 10.0]], [[-10.0, 2.0]]]])
    p0 = torch.tensor([2.0, 0.0, 0.0]).exp() / torch.tensor([2.0, 0.0, 0.0]).exp().sum()
    p1 = torch.tensor([0.0, 1.0, 3.0]).exp() / torch.tensor([0.0, 1.0, 3.0]).exp().sum()
    s0 = torch.sigmoid(torch.tensor([0.0, 10.0]))
    s1 = torch.sigmoid(torch.tensor([-10.0, 2.0]))
    expected = torch.stack([p0[k] * s0 + p1[k] * s1 for k in range(2)]).view(1, 2, 1, 2)
    out = semantic_inference(logits, masks)
    assert out.shape == (1, 2, 1, 2)
    torch.testing.assert_close(out, expected)


def test_semantic_inference_ignores_void_and_matches_einsum() -> None:
    g = torch.Generator().manual_seed(0)
    logits, masks = torch.randn(2, 4, 6, generator=g), torch.randn(2, 4, 3, 5, generator=g)
    out = semantic_inference(logits.half(), masks.half())
    assert out.dtype == torch.float32 and out.shape == (2, 5, 3, 5)
    probs = logits.half().float().softmax(-1)
    expected = torch.zeros(2, 5, 3, 5)
    for q in range(4):
        expected += probs[:, q, :5, None, None] * masks.half().float()[:, q, None].sigmoid()
    torch.testing.assert_close(out, expected)


def test_window_starts() -> None:
    assert window_starts(64, 64, 42) == [0]
    assert window_starts(40, 64, 42) == [0]
    assert window_starts(128, 64, 42) == [0, 32, 64]
    starts = window_starts(1000, 640, 426)
    assert starts[0] == 0 and starts[-1] == 360 and all(b - a <= 426 for a, b in itertools.pairwise(starts))


def test_sliding_window_on_three_windows_is_the_per_pixel_average() -> None:
    """A 64×128 image and 64² windows with overlap 1/3 give windows at x = 0, 32, 64."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 128, generator=g)
    calls: list[torch.Tensor] = []

    def score_fn(crops: torch.Tensor) -> torch.Tensor:
        calls.append(crops)
        # two "classes": the crop's mean (one constant per window) and its red channel, at half resolution
        mean = crops.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).expand(-1, 1, 32, 32)
        return torch.cat([mean, crops[:, :1, ::2, ::2] * 0 + 1.0], dim=1)

    out = sliding_window(score_fn, image, window=64, overlap=1 / 3, window_batch=2)
    assert out.shape == (2, 64, 128)
    assert [c.shape[0] for c in calls] == [2, 1]
    window_means = [image[:, :, x : x + 64].mean() for x in (0, 32, 64)]
    expected = torch.empty(128)
    for col in range(128):
        covering = [m for m, x in zip(window_means, (0, 32, 64)) if x <= col < x + 64]
        expected[col] = torch.stack(covering).mean()
    torch.testing.assert_close(out[0], expected.expand(64, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], torch.ones(64, 128))


def test_sliding_window_pads_small_images_and_crops_back() -> None:
    image = torch.rand(3, 20, 50)
    seen: list[torch.Tensor] = []

    def score_fn(crops: torch.Tensor) -> torch.Tensor:
        seen.append(crops)
        return crops[:, :2]

    out = sliding_window(score_fn, image, window=64)
    assert seen[0].shape == (1, 3, 64, 64)
    assert torch.equal(seen[0][0, :, 20:], torch.zeros(3, 44, 64))
    assert torch.equal(out, image[:2])


def test_sliding_window_rejects_batched_input() -> None:
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        sliding_window(lambda x: x, torch.zeros(1, 3, 8, 8), window=8)


@pytest.mark.parametrize(
    ("shape", "size", "chunk_rows"),
    [
        ((5, 7, 9), (20, 33), 3),
        ((4, 40, 30), (13, 17), 128),
        ((3, 16, 16), (64, 48), 7),
        ((2, 6, 6), (6, 6), 2),
    ],
)
def test_upsample_argmax_equals_interpolate_then_argmax(shape, size, chunk_rows: int) -> None:
    scores = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False).argmax(1)[0]
    labels = upsample_argmax(scores, size, chunk_rows=chunk_rows)
    assert labels.shape == size and labels.dtype == torch.long
    assert torch.equal(labels, expected)


def test_upsample_argmax_breaks_ties_like_interpolate_then_argmax() -> None:
    """Duplicated classes tie everywhere: both pick the first; 31 classes, uneven bands.

    (Upsampling only: when ``F.interpolate`` downsamples, its vectorised kernel can round two identical
    channels differently, so the reference itself splits such ties.)
    """
    scores = torch.randn(16, 23, 29, generator=torch.Generator().manual_seed(1))
    scores = torch.cat([scores, scores[:15]])  # classes 16..30 repeat 0..14
    for size in ((101, 67), (50, 200)):
        expected = F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False).argmax(1)[0]
        labels = upsample_argmax(scores, size, chunk_rows=5)
        assert torch.equal(labels, expected)
        assert int(labels.max()) < 16  # never a duplicate's second copy
