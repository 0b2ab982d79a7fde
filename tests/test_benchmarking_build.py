"""``mrovseg.benchmarking.build`` composes the real experiment configs (no shape tables of its own)."""

from __future__ import annotations

import pytest
import torch

from mrovseg.benchmarking.build import build, compose_experiment


def test_builds_the_experiment_config_reproducibly() -> None:
    cfg = compose_experiment("toy")
    a, b = build("toy"), build("toy")
    assert a.side == cfg.module.window == 64 and a.label == "toy"
    assert a.model.adapter.num_queries == cfg.model.adapter.num_queries
    assert a.cfg.clip.pretrained is None  # random CLIP weights, no download
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # seeded: identical in any process


def test_size_pads_to_twice_the_patch_and_sets_the_views() -> None:
    built = build("toy", size=70, overrides=["model.adapter.depth=1"])
    assert built.side == 72 and built.model.slicer.clip_size == 36  # patch 4: multiple of 8
    assert len(built.model.adapter.blocks) == 1


def test_unknown_model_is_named() -> None:
    with pytest.raises(ValueError, match="vitx"):
        compose_experiment("vitx")
