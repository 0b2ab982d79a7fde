"""Tests for the Multi-Res Adapter and Multi-Res Fusion (Eq. 2-3, Table 4 switches)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mrovseg.model.mrovseg.adapter import MULTIRES_FUSIONS, SPATIAL_FUSIONS, MultiResAdapter, MultiResFusion

CLIP_DIM, DIM = 24, 16


def _maps(batch: int = 2, hr: tuple[int, int] = (8, 6), lr: tuple[int, int] = (4, 3), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, CLIP_DIM, *hr, generator=g), torch.randn(batch, CLIP_DIM, *lr, generator=g)


@pytest.mark.parametrize("spatial", SPATIAL_FUSIONS)
@pytest.mark.parametrize("multires", MULTIRES_FUSIONS)
def test_fusion_shapes_and_gradients(spatial: str, multires: str) -> None:
    torch.manual_seed(0)
    fusion = MultiResFusion(CLIP_DIM, DIM, spatial, multires)
    hr, lr = _maps()
    out = fusion(hr, lr)
    assert out.shape == (2, DIM, 8, 6)
    out.square().mean().backward()
    assert all(p.grad is not None for p in fusion.parameters())
    assert fusion.proj_hr[1].weight.grad.abs().sum() > 0


def test_scale_attention_is_eq2_and_starts_balanced() -> None:
    """F = Up(a) ⊙ DConv(H) + Up((1 − a) ⊙ H̄), with a = σ(f_A(·)) = 0.5 at initialisation."""
    torch.manual_seed(0)
    fusion = MultiResFusion(CLIP_DIM, DIM, "dconv", "scale_attention")
    hr, lr = _maps(hr=(4, 4), lr=(4, 4))  # same grid: Up is the identity
    with torch.no_grad():
        detail = fusion.spatial(fusion.proj_hr(hr))
        glob = fusion.proj_lr(lr)
        torch.testing.assert_close(fusion(hr, lr), 0.5 * detail + 0.5 * glob)
        torch.nn.init.normal_(fusion.f_a.weight)
        a = torch.sigmoid(fusion.f_a(fusion.proj_hr(hr)))
        torch.testing.assert_close(fusion(hr, lr), a * detail + (1 - a) * glob)


def test_fusion_variants_use_the_global_view_as_documented() -> None:
    torch.manual_seed(0)
    hr, lr = _maps()
    lr2 = lr + torch.randn_like(lr)
    none = MultiResFusion(CLIP_DIM, DIM, "dconv", "none")
    with torch.no_grad():
        assert torch.equal(none(hr, lr), none(hr, lr2))  # the high-res feature alone
        add = MultiResFusion(CLIP_DIM, DIM, "dconv", "add")
        up = F.interpolate(add.proj_lr(lr), size=(8, 6), mode="bilinear", align_corners=False)
        torch.testing.assert_close(add(hr, lr), add.spatial(add.proj_hr(hr)) + up)
        assert not torch.allclose(add(hr, lr), add(hr, lr2))


def test_concat_spatial_fusion_has_no_spatial_mixing() -> None:
    """``concat``: restored slice tokens with a pointwise projection only; ``dconv`` mixes neighbours."""
    torch.manual_seed(0)
    hr, lr = _maps()
    hr2 = hr.clone()
    hr2[:, :, 0, 0] += torch.randn(CLIP_DIM)  # varies over channels, so the LayerNorm keeps it
    for spatial, neighbour_changes in (("concat", False), ("dconv", True)):
        fusion = MultiResFusion(CLIP_DIM, DIM, spatial, "none")
        with torch.no_grad():
            diff = (fusion(hr, lr) - fusion(hr2, lr)).abs()
        assert diff[:, :, 0, 0].max() > 1e-3
        assert (diff[:, :, 1, 1].max() > 1e-3) == neighbour_changes
        assert diff[:, :, 2:, 2:].max() == 0  # beyond the 3×3 neighbourhood nothing moves


def test_invalid_fusion_names_raise() -> None:
    with pytest.raises(ValueError, match="spatial_fusion"):
        MultiResFusion(CLIP_DIM, DIM, "pixelshuffle", "add")
    with pytest.raises(ValueError, match="multires_fusion"):
        MultiResFusion(CLIP_DIM, DIM, "dconv", "max")
    with pytest.raises(ValueError, match="at least one block"):
        MultiResAdapter(CLIP_DIM, dim=DIM, depth=0, num_heads=2)


@pytest.mark.parametrize(
    ("depth", "fusion_layers", "expected_inject"),
    [
        (6, (0, 3, 6, 9, 12), [0, 1, 2, 3, 4]),
        (3, (0, 1, 2, 3), [0, 0, 1, 2]),
        (1, (1, 2), [0, 0]),
        (9, (3, 6, 9), [0, 3, 6]),
    ],
)
def test_adapter_outputs_and_injection_points(
    depth: int, fusion_layers: tuple[int, ...], expected_inject: list[int]
) -> None:
    torch.manual_seed(0)
    adapter = MultiResAdapter(
        CLIP_DIM, dim=DIM, depth=depth, num_heads=2, num_queries=7, fusion_layers=fusion_layers, mask_dim=12
    )
    assert adapter.inject_before == expected_inject
    layers = {0, *fusion_layers}
    hr = {layer: _maps(seed=layer)[0] for layer in layers}
    lr = {layer: _maps(seed=layer)[1] for layer in layers}
    out = adapter(hr, lr)
    assert out.visual.shape == (2, DIM, 8, 6)
    assert len(out.query_features) == depth
    assert all(q.shape == (2, 7, 12) for q in out.query_features)
    assert len(out.fused) == len(fusion_layers)
    assert all(f.shape == (2, DIM, 8, 6) for f in out.fused)
    (out.visual.mean() + out.query_features[-1].mean()).backward()
    assert all(p.grad is not None for p in adapter.parameters())


def test_every_fusion_layer_reaches_the_output() -> None:
    torch.manual_seed(0)
    adapter = MultiResAdapter(
        CLIP_DIM, dim=DIM, depth=2, num_heads=2, num_queries=3, fusion_layers=(1, 2), mask_dim=8
    )
    hr = {layer: _maps(seed=layer)[0] for layer in (0, 1, 2)}
    lr = {layer: _maps(seed=layer)[1] for layer in (0, 1, 2)}
    with torch.no_grad():
        base = adapter(hr, lr).query_features[-1]
        for layer in (0, 1, 2):
            bumped = hr[layer] + torch.randn_like(hr[layer])  # not a constant: LayerNorm would remove it
            changed = adapter({**hr, layer: bumped}, lr).query_features[-1]
            assert not torch.allclose(base, changed), layer
