"""The checkpoint format module: build configs that a checkpoint can follow, command-line overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from mrovseg.data.prepare.common import parallel_map
from mrovseg.training.checkpoint import (
    apply_overrides,
    build_config_of,
    build_module,
    flatten_keys,
    upgrade_build_config,
)
from tests.helpers import composed


@pytest.mark.parametrize(("experiment", "window"), [("toy", 64), ("vitb16", 640), ("vitl14", 644)])
def test_build_config_resolves_references_to_other_groups_only(
    tmp_path: Path, experiment: str, window: int
) -> None:
    with composed("train", tmp_path, [f"experiment={experiment}"], base=()) as cfg:
        assert cfg.module.window == cfg.data.get("crop_size", cfg.data.get("train_size"))
        build = build_config_of(cfg)
    assert build["module"]["window"] == window  # was ${data...}: a checkpoint stores no data group
    matcher = build["criterion"]["matcher"]
    assert matcher["num_points"] == "${..num_points}"  # relative references stay as written
    resolved = OmegaConf.to_container(OmegaConf.create(build).criterion, resolve=True)
    assert resolved["matcher"]["num_points"] == resolved["num_points"]
    costs = [resolved["matcher"][k] for k in ("cost_class", "cost_mask", "cost_dice")]
    assert (
        costs
        == [resolved["weight_dict"][k] for k in ("loss_ce", "loss_mask", "loss_dice")]
        == [2.0, 5.0, 5.0]
    )
    if experiment == "toy":
        # paths inside the installed package stay ${asset:...}: portable across installs
        assert build["clip"]["model_config"] == "${asset:toy_clip/toy-vit-p4-32.json}"


def test_apply_overrides_uses_hydra_syntax_for_the_build_groups_only() -> None:
    stored = {"clip": {"model_name": "a"}, "model": {"x": 1, "y": 2, "sub": {"z": [1, 2]}}, "module": {}}
    out = apply_overrides(
        stored,
        ["model.x=5", "+model.new=[3,4]", "~model.y", "model.sub.z=[7]", "clip=other", "eval.benchmarks=[a]"],
    )
    assert out["model"] == {"x": 5, "new": [3, 4], "sub": {"z": [7]}}
    assert out["clip"] == {"model_name": "a"} and "eval" not in out
    assert stored["model"]["x"] == 1  # the input is not modified


def test_flatten_keys() -> None:
    assert flatten_keys({"a": {"b": 1, "c": {"d": None}}, "e": [1]}) == {"a.b": 1, "a.c.d": None, "e": [1]}


def test_parallel_map_keeps_order_in_processes_and_inline() -> None:
    jobs = list(range(-10, 10))
    assert parallel_map(abs, jobs, workers=2) == parallel_map(abs, jobs, workers=1) == [abs(j) for j in jobs]
    assert np.array_equal(parallel_map(abs, [], workers=2), [])


def test_build_config_of_an_older_checkpoint_is_upgraded_to_partial_optimizer_configs(tmp_path: Path) -> None:
    with composed("train", tmp_path) as cfg:
        today = build_config_of(cfg)
    old = OmegaConf.to_container(OmegaConf.create(today))
    old["module"].pop("optimizer"), old["module"].pop("scheduler")
    lr = today["module"]["optimizer"]["lr"]
    old["module"].update(lr=lr, weight_decay=1e-4, poly_power=0.9, num_log_images=4, prediction_dir=None)
    upgraded = upgrade_build_config(old)
    expected = OmegaConf.to_container(OmegaConf.create(today))
    expected["module"]["scheduler"]["warmup_iters"] = 0  # runs of that format had no warm-up
    assert upgraded == expected
    assert upgrade_build_config(today) == today
    assert build_module(upgraded).make_optimizer.keywords == {"lr": lr, "weight_decay": 1e-4}


def test_checkpoints_from_before_the_cls_key_switch_keep_the_cls_key() -> None:
    old = {"model": {"_target_": "mrovseg.model.mrovseg.model.MROVSeg", "classifier": {"decoupled": True}}}
    assert upgrade_build_config(old)["model"]["classifier"] == {"decoupled": True, "cls_key": True}
    new = {"model": {"_target_": "mrovseg.model.mrovseg.model.MROVSeg", "classifier": {"cls_key": False}}}
    assert upgrade_build_config(new)["model"]["classifier"]["cls_key"] is False
    other = {"model": {"_target_": "mrovseg.model.training_free.dense_clip.DenseCLIP"}}
    assert "classifier" not in upgrade_build_config(other)["model"]
