"""``experiment=toy data=custom``: a custom dataset drawn from the toy world trains, evaluates with
base/novel/hIoU under its own class names, and its checkpoint scores another vocabulary zero-shot."""

from __future__ import annotations

import json
from pathlib import Path

import hydra
import numpy as np
import pytest

from mrovseg.data.check import DatasetCheckError
from mrovseg.data.prepare.custom_toy import prepare_toy
from mrovseg.data.synthetic import ToyWorld
from mrovseg.eval import evaluate
from mrovseg.train import train
from tests.data.custom_builders import make_custom
from tests.helpers import TINY_MODEL, TINY_TRAINER, composed

#: The shipped toy CLIP (pretrained on the toy world); training and evaluation load the same file.
CLIP = "clip.pretrained=${asset:toy_clip/toy-vit-p4-32.pt}"
CUSTOM = ["data=custom", "data.batch_size=2", "data.num_workers=0", "data.pin_memory=false", "logger={}"]
BASE = TINY_MODEL + TINY_TRAINER
OV_SCALARS = {"mIoU", "base_mIoU", "novel_mIoU", "hIoU"}
#: A custom dataset's entry with a novel list: the metrics, their bootstrap intervals, the counts.
OV_KEYS = {
    *OV_SCALARS,
    *(f"{k}_ci95" for k in OV_SCALARS),
    "pixel_acc",
    "per_class_iou",
    "num_images",
    "ci_resamples",
}


def test_toy_world_dataset_trains_and_evaluates_then_scores_new_names(tmp_path: Path) -> None:
    data = prepare_toy(tmp_path / "toyds", num_train=4, num_val=2, eval_size=(64, 64)).root
    world = ToyWorld()
    run = tmp_path / "run"
    with composed("train", run, [CLIP, "experiment=toy", *CUSTOM, f"data.root={data}"], base=BASE) as cfg:
        datamodule = hydra.utils.instantiate(cfg.data)
        assert datamodule.train_class_names == [world.class_names[k] for k in world.base_classes]
        out = train(cfg)
        assert cfg.optimized_metric == "val/custom/mIoU"  # was the toy experiment's val/toy/mIoU
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics) == ["custom"]
    entry = metrics["custom"]
    assert set(entry) == OV_KEYS and entry["num_images"] == 2
    assert list(entry["per_class_iou"]) == world.class_names
    for key in ("mIoU", "base_mIoU", "novel_mIoU", "hIoU", "pixel_acc"):
        assert entry[key] is None or 0.0 <= entry[key] <= 100.0, key
    assert {"val/custom/hIoU", "test/custom/novel_mIoU"} <= set(out["callback_metrics"])
    assert (run / "checkpoints" / "best.ckpt").is_file()

    # zero-shot: the checkpoint scores a dataset whose names it never trained with
    names = ["background", "purple star, violet star", "white ring"]
    label = np.zeros((64, 64), np.uint8)
    label[10:30, 10:30], label[40:50, 5:60], label[0, :] = 1, 2, 255
    other = make_custom(tmp_path / "other", names, {"val": [label]})
    ckpt = run / "checkpoints" / "last.ckpt"
    with composed(
        "eval", tmp_path / "eval", [CLIP, f"ckpt_path={ckpt}", *CUSTOM, f"data.root={other}"], base=BASE
    ) as cfg:
        results = evaluate(cfg)
    assert list(results) == ["custom"]
    no_novel = {"mIoU", "mIoU_ci95", "pixel_acc", "per_class_iou", "num_images", "ci_resamples"}
    assert set(results["custom"]) == no_novel  # no novel list
    assert list(results["custom"]["per_class_iou"]) == names
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["custom"]["num_images"] == 1

    # evaluation runs the same fast check before the first image
    (other / "labels" / "val" / "val_0.png").unlink()
    with (
        composed(
            "eval", tmp_path / "eval2", [CLIP, f"ckpt_path={ckpt}", *CUSTOM, f"data.root={other}"], base=BASE
        ) as cfg,
        pytest.raises(DatasetCheckError, match=r"(?s)\[empty-split\].*\[image-without-label\].*val_0\.png"),
    ):
        evaluate(cfg)


def test_training_stops_before_any_work_on_a_broken_dataset(tmp_path: Path) -> None:
    label = np.zeros((8, 8), np.uint8)
    data = make_custom(tmp_path / "ds", ["a", "b", "b"], {"train": [label, label], "val": [label]})
    (data / "labels" / "val" / "val_0.png").rename(data / "labels" / "val" / "renamed.png")
    run = tmp_path / "run"
    with (
        composed("train", run, [CLIP, "experiment=toy", *CUSTOM, f"data.root={data}"], base=BASE) as cfg,
        pytest.raises(DatasetCheckError) as err,
    ):
        train(cfg)
    text = str(err.value)
    assert "[duplicate-class-name]" in text and "line 3 (label value 2) repeats line 2" in text
    assert "[image-without-label]" in text and "val_0.png" in text
    assert "[label-without-image]" in text and "renamed.png" in text
    assert not (run / "checkpoints").exists()


def test_vitb16_experiment_composes_with_custom_data(tmp_path: Path) -> None:
    from mrovseg.training.preflight import check_before_training

    label = np.zeros((8, 8), np.uint8)
    data = make_custom(tmp_path / "ds", ["a", "b"], {"train": [label] * 16, "val": [label]})
    with composed(
        "train", tmp_path / "run", ["experiment=vitb16", "data=custom", f"data.root={data}"], base=[]
    ) as cfg:
        datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
        assert datamodule.train_transform.crop_size == (640, 640) and datamodule.batch_size == 16
        assert datamodule.eval_transform.short_side == 640
        assert cfg.optimized_metric == "val/ade150/mIoU"
        assert check_before_training(cfg, datamodule) == "val/custom/mIoU"
        assert cfg.optimized_metric == "val/ade150/mIoU"  # the check reports, train.py sets it
        cfg.optimized_metric = "val/custom/mIoU"
        assert cfg.callbacks.model_checkpoint.monitor == "val/custom/mIoU"


def test_console_script_is_declared() -> None:
    import importlib

    from mrovseg.constants import REPO_ROOT

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["mrovseg-check-data"].split(":")
    assert callable(getattr(importlib.import_module(module), func))
