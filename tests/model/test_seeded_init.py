"""``seed_by_name=true``: initial weights keyed by (seed, module name) — common random numbers.

Settings compared on one seed must start every module they share from the same weights (the point),
draw each module from its own distribution (the constructor's), and leave the global RNG alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from mrovseg.model.seeded_init import derived_seed, redraw_by_name_
from tests.helpers import composed


def _redrawn(make_model: Any, seed: int, construction_seed: int = 0, **options: Any) -> nn.Module:
    model = make_model(seed=construction_seed, **options)
    model.redraw_initial_weights(seed)
    return model


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_derived_seed_is_sha256_of_seed_and_name() -> None:
    expected = int.from_bytes(hashlib.sha256(b"3/adapter.queries").digest()[:8], "little") >> 1
    assert derived_seed(3, "adapter.queries") == expected
    assert 0 <= derived_seed(0, "x") < 2**63
    assert derived_seed(0, "a") != derived_seed(1, "a") != derived_seed(0, "b")


def test_weights_depend_on_the_seed_alone_not_on_the_construction_stream(make_model: Any) -> None:
    a = _trainable(_redrawn(make_model, seed=7, construction_seed=0))
    b = _trainable(_redrawn(make_model, seed=7, construction_seed=123))
    c = _trainable(_redrawn(make_model, seed=8, construction_seed=0))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    drawn = [k for k in a if a[k].std() > 0]  # not the zero / one constants
    assert drawn and all(not torch.equal(a[k], c[k]) for k in drawn)


@pytest.mark.parametrize(
    ("other", "differs"),
    [
        ({"adapter": {"num_queries": 9}}, ("adapter.queries", "classifier.query_pos")),
        ({"adapter": {"depth": 3}}, ("adapter.blocks.2.",)),  # a third block; blocks 0 and 1 as before
        ({"adapter": {"fusion_layers": [0, 1, 2]}}, ("adapter.fusions.3.",)),  # one fusion fewer
    ],
)
def test_settings_share_every_module_they_have_in_common(
    make_model: Any, other: dict[str, Any], differs: tuple[str, ...]
) -> None:
    """A sweep setting changes its own modules' weights only; built from the construction stream alone,
    a different query count shifts every draw after the queries."""
    base = _trainable(_redrawn(make_model, seed=0))
    changed = _trainable(_redrawn(make_model, seed=0, **other))
    unlike = {
        k
        for k in base.keys() | changed.keys()
        if k not in base
        or k not in changed
        or base[k].shape != changed[k].shape
        or not torch.equal(base[k], changed[k])
    }
    assert unlike and all(k.startswith(differs) for k in unlike)
    assert len(base.keys() & changed.keys()) > 80
    if "num_queries" in other["adapter"]:
        plain, plain_other = _trainable(make_model(seed=0)), _trainable(make_model(seed=0, **other))
        assert not torch.equal(plain["adapter.stem_proj.1.weight"], plain_other["adapter.stem_proj.1.weight"])


@pytest.mark.parametrize(
    "options", [{}, {"init": "vit"}, {"slice_ratio": 0.0}, {"adapter": {"multires_fusion": "concat"}}]
)
def test_each_module_keeps_its_own_distribution(make_model: Any, options: dict[str, Any]) -> None:
    """Constants (zero gates, zero query_pos, LayerNorm's ones) stay constants; drawn tensors keep their
    scale (std within 30 % of the constructor's, tensors of ≥ 256 values)."""
    built = _trainable(make_model(seed=0, **options))
    redrawn = _trainable(_redrawn(make_model, seed=5, **options))
    for name, before in built.items():
        after = redrawn[name]
        if before.std() == 0 or before.numel() == 1:
            assert torch.equal(before, after), name
        elif before.numel() >= 256:
            assert 0.7 < float(after.std() / before.std()) < 1.3, name
    gates = [n for n in built if ".f_a." in n]
    assert all(torch.count_nonzero(redrawn[n]) == 0 for n in gates)
    assert bool(gates) == ("adapter" not in options)


def test_frozen_clip_and_the_global_rng_are_left_alone(make_model: Any) -> None:
    model = make_model(seed=0)
    clip = {n: p.clone() for n, p in model.backbone.named_parameters()}
    torch.manual_seed(99)
    expected = torch.rand(4)
    torch.manual_seed(99)
    names = model.redraw_initial_weights(3)
    assert torch.equal(torch.rand(4), expected)
    assert all(torch.equal(p, clip[n]) for n, p in model.backbone.named_parameters())
    assert {"adapter", "adapter.blocks.0.attn.qkv", "classifier"} <= set(names)
    assert names.index("adapter.fusions.0.f_a") < names.index("adapter.fusions.0")  # the gate's parent last
    assert all(n.split(".")[0] in ("adapter", "decoder", "classifier") for n in names)


def test_a_module_without_reset_parameters_is_refused() -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(
        TypeError, match=r"head\.1 \(Gate\) owns trainable parameters but has no reset_parameters"
    ):
        redraw_by_name_({"head": nn.Sequential(nn.Linear(2, 2), Gate())}, seed=0)
    frozen = nn.Sequential(nn.Linear(2, 2), Gate()).requires_grad_(False)
    assert redraw_by_name_({"clip": frozen}, seed=0) == []


def test_train_sets_the_data_order_from_the_seed_and_refuses_other_models(tmp_path: Path) -> None:
    from mrovseg.train import build, seed_by_name

    with composed("train", tmp_path / "a", ["seed=4"]) as cfg:
        datamodule, module = build(cfg)
        assert datamodule.order_seed is None
        seed_by_name(cfg.seed, datamodule, module)
        assert datamodule.order_seed == 4
        expected = module.model.adapter.queries.detach().clone()
        module.model.redraw_initial_weights(4)
        assert torch.equal(module.model.adapter.queries, expected)
    other_method = SimpleNamespace(model=nn.Linear(2, 2))  # OVSeg's and MGCA's models: no redraw
    with pytest.raises(ValueError, match=r"seed_by_name=true: Linear cannot redraw its initial weights"):
        seed_by_name(0, datamodule, other_method)
