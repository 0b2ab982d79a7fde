"""Tests of the training entry point (``mrovseg.train``): runs, checkpoints, resuming, learning, W&B.

Runs use the default (toy) experiment shrunk by ``tests.helpers.TINY`` and random toy-CLIP weights.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.synthetic import ToyWorld
from mrovseg.train import train
from mrovseg.training.callbacks.wandb_logging import overlay_payload
from mrovseg.training.checkpoint import load_module
from tests.helpers import (
    INTERVAL_KEYS,
    METRIC_KEYS,
    OVERFIT,
    SCALAR_KEYS,
    TINY,
    RecordTrainStart,
    composed,
    describe,
    run_entry_point,
    tiny_trained_run,
)

TOY_CLASSES = ToyWorld().class_names  # the 31 classes of the default toy world


def test_fast_dev_run_trains_and_tests_one_batch(tmp_path: Path) -> None:
    with composed("train", tmp_path, ["debug=fast_dev_run"]) as cfg:
        out = train(cfg)
        optimized = cfg.optimized_metric
    metrics = out["callback_metrics"]
    assert math.isfinite(metrics["train/loss"])
    # what a sweeper optimises survives the final test loop (val/toy/mIoU for the toy experiment)
    assert optimized == "val/toy/mIoU" and 0.0 <= metrics[optimized] <= 100.0
    assert "test/toy/mIoU" in metrics
    entry = out["results"]["toy"]
    assert entry["num_images"] == 1  # one test batch of one image
    assert 0.0 <= entry["mIoU"] <= 100.0
    assert set(entry["per_class_iou"]) == set(TOY_CLASSES)
    # fast_dev_run writes no checkpoint, log or metrics file
    assert not list(tmp_path.rglob("*.ckpt"))
    assert not (tmp_path / "csv").exists()
    assert not (tmp_path / "metrics.json").exists()


def test_train_cli_writes_checkpoints_and_metrics(tmp_path: Path) -> None:
    proc = run_entry_point("mrovseg.train", ["clip.pretrained=null", *TINY, f"hydra.run.dir={tmp_path}"])
    assert proc.returncode == 0, describe(proc)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics) == ["toy"]
    entry = metrics["toy"]
    assert set(entry) == METRIC_KEYS
    assert entry["num_images"] == 2
    assert list(entry["per_class_iou"]) == TOY_CLASSES
    for key in SCALAR_KEYS:
        assert entry[key] is None or 0.0 <= entry[key] <= 100.0, key
    for key in INTERVAL_KEYS:  # [lo, hi] over bootstrap resamples of the 2 images
        lo, hi = entry[key]
        assert lo is None or 0.0 <= lo <= hi <= 100.0, key
    assert entry["ci_resamples"] == 1000
    with open(next(tmp_path.glob("csv/version_*/metrics.csv"))) as f:
        steps = [row for row in csv.DictReader(f) if row.get("train/loss")]
    assert len(steps) == 2 and all(math.isfinite(float(r["train/loss"])) for r in steps)


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_holds_trained_weights_and_config_but_no_clip(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run, module = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    # plain data only: Lightning resumes (ckpt_path=last) with torch.load(weights_only=True)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    assert not [k for k in state if k.startswith("model.backbone.")]
    expected = {k for k in module.state_dict() if not k.startswith("model.backbone.")}
    assert set(state) == expected
    assert {"clip", "model", "criterion", "module"} <= set(ckpt["mrovseg_config"])
    assert ckpt["mrovseg_config"]["model"]["adapter"]["depth"] == 2
    assert ckpt["mrovseg_clip"] == {
        "model_name": "toy-vit-p4-32",
        "pretrained": str(run / "clip.pt"),
        "width": 64,
        "depth": 3,
    }
    assert ckpt["global_step"] == 100


def test_load_module_rebuilds_the_trained_module(tmp_path_factory: pytest.TempPathFactory) -> None:
    run, trained = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    loaded = load_module(run / "checkpoints" / "last.ckpt")
    assert not loaded.training
    mine, theirs = trained.state_dict(), loaded.state_dict()
    assert set(mine) == set(theirs)
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    names = TOY_CLASSES[:5]
    with torch.no_grad():
        a, b = trained.eval()(images, names), loaded(images, names)
    assert torch.equal(a["pred_logits"], b["pred_logits"])
    assert torch.equal(a["pred_masks"], b["pred_masks"])


# ---------------------------------------------------------------- resuming
def _final_state(ckpt_path: Path) -> dict:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    return {
        "global_step": ckpt["global_step"],
        "optimizer": ckpt["optimizer_states"][0],
        "scheduler": ckpt["lr_schedulers"][0],
        "weights": ckpt["state_dict"],
    }


def test_resumed_run_continues_with_the_same_optimizer_and_scheduler(tmp_path: Path) -> None:
    # One 1-image batch per epoch, the loss's random points reseeded per step: an interrupted run
    # resumed from last.ckpt must end exactly where an uninterrupted one does.
    common = [
        "data.num_train=1",
        "data.batch_size=1",
        "module.optimizer.lr=1e-2",
        "trainer.max_steps=4",
        "trainer.limit_val_batches=0",
        "test=false",
        "logger={}",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "callbacks.latest_checkpoint.every_n_train_steps=1",
        "+callbacks.reseed._target_=tests.helpers.ReseedEachStep",
        "+callbacks.record._target_=tests.helpers.RecordTrainStart",
    ]
    with composed("train", tmp_path / "straight", common) as cfg:
        train(cfg)
    straight = _final_state(tmp_path / "straight" / "checkpoints" / "last.ckpt")

    crash = ["+callbacks.crash._target_=tests.helpers.CrashAtStep", "+callbacks.crash.step=2"]
    with (
        composed("train", tmp_path / "resumed", [*common, *crash]) as cfg,
        pytest.raises(RuntimeError, match="crash"),
    ):
        train(cfg)
    interrupted = _final_state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert interrupted["global_step"] == 2

    RecordTrainStart.records.clear()
    with composed("train", tmp_path / "resumed", [*common, "ckpt_path=last"]) as cfg:
        train(cfg)
    # training restarted at step 2 with exactly the saved optimiser and scheduler states
    (start,) = RecordTrainStart.records
    assert start["global_step"] == 2
    assert start["scheduler"] == interrupted["scheduler"]
    assert start["scheduler"]["last_epoch"] == 2
    torch.testing.assert_close(start["optimizer"]["state"], interrupted["optimizer"]["state"], rtol=0, atol=0)
    assert start["optimizer"]["param_groups"] == interrupted["optimizer"]["param_groups"]

    resumed = _final_state(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == straight["global_step"] == 4
    assert resumed["scheduler"]["last_epoch"] == straight["scheduler"]["last_epoch"] == 4
    assert resumed["scheduler"]["_last_lr"] == straight["scheduler"]["_last_lr"]
    assert straight["scheduler"]["_last_lr"][0] == pytest.approx(0.0)  # poly decay reaches 0 at max_steps
    assert resumed["optimizer"]["param_groups"] == straight["optimizer"]["param_groups"]
    torch.testing.assert_close(resumed["optimizer"]["state"], straight["optimizer"]["state"])
    torch.testing.assert_close(resumed["weights"], straight["weights"])


# ---------------------------------------------------------------- learning
def test_overfits_two_scenes(tmp_path: Path) -> None:
    """300 steps on 2 toy scenes (closed set, full 31-class vocabulary) reach mIoU > 90 on them.

    The CLIP has random weights; see ``tests.helpers.OVERFIT`` for the settings this needs.
    """
    overrides = [*OVERFIT, "trainer.max_steps=300", "trainer.val_check_interval=300"]
    with composed("train", tmp_path, [*overrides, "test=false", "logger={}", "callbacks=none"]) as cfg:
        out = train(cfg)
    entry = out["results"]["toy"]
    assert entry["num_images"] == 2
    present = {k: v for k, v in entry["per_class_iou"].items() if not math.isnan(v)}
    assert len(present) >= 4, present  # background and at least 3 objects
    assert entry["mIoU"] > 90.0, present


# ---------------------------------------------------------------- Weights & Biases
def test_wandb_logger_writes_an_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    try:
        with composed("train", run, ["logger=wandb", "test=false"]) as cfg:
            train(cfg)
    finally:
        wandb.finish()
        wandb.teardown()  # stops W&B's service process, which writes the offline records asynchronously
    (offline,) = (run / "wandb").glob("offline-run-*")
    (records,) = offline.glob("run-*.wandb")
    logged = records.read_bytes()
    for key in (b"train/loss", b"train/lr", b"val/toy/mIoU", b"val/toy/hIoU"):
        assert key in logged, key
    # the extras of mrovseg.training.callbacks.wandb_logging: the per-class IoU table and the overlays with both masks
    media = offline / "files" / "media"
    (table,) = media.glob("table/val/toy/per_class_iou_*.table.json")
    rows = json.loads(table.read_text())["data"]
    assert [name for name, _ in rows] == TOY_CLASSES
    assert len(list(media.glob("images/val/toy/overlays_*.png"))) == 1  # callbacks.wandb_eval.num_images=1
    assert len(list(media.glob("images/mask/val/toy/overlays_*.mask.png"))) == 2
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_overlay_payload_labels_both_masks() -> None:
    names = ["background", "red circle, red disc", "blue square"]
    image = torch.rand(3, 8, 12)
    pred = torch.randint(0, 3, (8, 12))
    label = torch.randint(0, 3, (16, 24))  # labels at twice the image size
    label[:4] = IGNORE_INDEX
    payload = overlay_payload(image, pred, label, names)
    assert payload["data_or_path"].shape == (8, 12, 3) and payload["data_or_path"].dtype.name == "uint8"
    masks = payload["masks"]
    expected_labels = {0: "background", 1: "red circle", 2: "blue square", 3: "ignore"}
    for key in ("prediction", "ground_truth"):
        assert masks[key]["class_labels"] == expected_labels
        assert masks[key]["mask_data"].shape == (8, 12)
    assert (masks["prediction"]["mask_data"] == pred.numpy()).all()
    gt = masks["ground_truth"]["mask_data"]
    assert (gt[:2] == 3).all()  # ignore → K
    assert (gt[2:] == label[4::2, ::2].numpy()).all()  # nearest resize of the rest
