"""Adaptive semantic units (docs/mgca.md §4): a partition of the image, unit label = argmax of its mean score."""

from __future__ import annotations

import pytest
import torch

from mrovseg.model.mgca.units import semantic_units, unit_coherence, unit_scores


def two_part_embeddings(h: int = 12, w: int = 16, cut: int = 6) -> torch.Tensor:
    """Embeddings ``(4, h, w)``: e_0 left of column ``cut``, e_1 right of it, plus a little noise."""
    g = torch.Generator().manual_seed(0)
    emb = torch.zeros(4, h, w)
    emb[0, :, :cut] = 1.0
    emb[1, :, cut:] = 1.0
    return emb + 0.01 * torch.randn(4, h, w, generator=g)


def test_units_partition_the_image_and_follow_the_embedding_boundary() -> None:
    emb = two_part_embeddings()
    units = semantic_units(emb, stride=4, iters=5, compactness=0.1, merge_threshold=None)
    assert units.shape == (12, 16) and units.dtype == torch.long
    ids = units.unique()
    assert ids.tolist() == list(range(len(ids)))  # every pixel in exactly one unit, ids consecutive
    assert 1 < len(ids) <= (12 // 4) * (16 // 4)  # at most one unit per seed
    for u in ids:  # no unit straddles the boundary between the two embeddings
        cols = (units == u).nonzero()[:, 1]
        assert bool((cols < 6).all()) or bool((cols >= 6).all())


def test_merging_adapts_the_units_to_the_content() -> None:
    units = semantic_units(two_part_embeddings(), stride=4, iters=5, compactness=0.1, merge_threshold=0.9)
    assert units.unique().tolist() == [0, 1]  # one unit per uniform region
    assert (units[:, :6] == units[0, 0]).all() and (units[:, 6:] == units[0, -1]).all()


def test_unit_label_is_argmax_of_its_mean_score() -> None:
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(5, 12, 16, generator=g).softmax(0)
    units = semantic_units(two_part_embeddings(), stride=4, merge_threshold=None)
    out = unit_scores(scores, units)
    labels = out.argmax(0)
    for u in units.unique():
        inside = units == u
        mean = scores[:, inside].mean(dim=1)  # by hand
        assert torch.allclose(out[:, inside], mean[:, None].expand(-1, int(inside.sum())), atol=1e-6)
        assert (labels[inside] == mean.argmax()).all()


def test_incoherent_units_fall_back_to_pixel_scores() -> None:
    emb = two_part_embeddings()
    scores = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(2))
    units = torch.zeros(12, 16, dtype=torch.long)  # one unit mixing both embeddings
    units[:, 8:] = 1  # unit 1 holds only e_1 pixels (coherent); unit 0 mixes e_0 and e_1
    coh = unit_coherence(emb, units)
    assert coh[1] > 0.99 and coh[0] < 0.9
    out = unit_scores(scores, units, emb, min_coherence=0.95)
    assert torch.equal(out[:, :, :8], scores[:, :, :8])  # incoherent unit: per-pixel
    assert torch.allclose(out[:, :, 8:], scores[:, :, 8:].mean(dim=(1, 2))[:, None, None].expand(-1, 12, 8))
    with pytest.raises(ValueError, match="embeddings"):
        unit_scores(scores, units, None, min_coherence=0.5)
    with pytest.raises(ValueError, match="do not match"):
        unit_scores(scores, units[:, :4])
