"""Tests of the LightningModule (``mrovseg.training.mrovseg``): metric accumulation, optimiser, NaN guard."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.data.toy_datamodule import ToyDataModule
from mrovseg.data.transforms import resize_short_side
from mrovseg.training.callbacks.prediction_writer import PredictionWriter
from mrovseg.training.checkpoint import build_config_of, build_module, load_module
from tests.helpers import composed, numpy_seg_metrics, tiny_trained_run


def _quiet_trainer(callbacks: list | None = None) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=callbacks,
    )


def _benchmark_samples(k: int, rng: np.random.Generator) -> list[dict]:
    """Three toy scenes (64²) with images downsized to 48² (labels keep 64²), labels folded into
    ``[0, k)`` and random ignore pixels."""
    datamodule = ToyDataModule(eval_size=(64, 64), num_test=3)
    samples = []
    for sample in datamodule.eval_dataset("test"):
        label = sample["label"] % k
        label[torch.from_numpy(rng.random(label.shape) < 0.2)] = IGNORE_INDEX
        image = resize_short_side(sample["image"].permute(1, 2, 0).numpy(), 48)
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
        samples.append({**sample, "label": label, "image": image, "name": f"{sample['name']}_k{k}"})
    return samples


def test_eval_step_accumulates_what_a_numpy_confusion_matrix_gives(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run, _ = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    module = load_module(run / "checkpoints" / "last.ckpt")  # a fixed model that predicts several classes
    world = ToyDataModule().world
    benchmarks = [
        BenchmarkInfo("all", list(world.class_names), list(world.base_classes)),
        BenchmarkInfo("five", list(world.class_names[:5]), None),
    ]
    module.configure_vocabularies(None, benchmarks)
    rng = np.random.default_rng(0)
    data = {b.name: _benchmark_samples(len(b.class_names), rng) for b in benchmarks}
    loaders = [DataLoader(data[b.name], batch_size=1) for b in benchmarks]
    _quiet_trainer([PredictionWriter(tmp_path)]).test(module, dataloaders=loaders)

    for bench in benchmarks:
        samples, k = data[bench.name], len(bench.class_names)
        preds = [
            np.asarray(Image.open(tmp_path / bench.name / f"{s['name']}.png")).astype(np.int64)
            for s in samples
        ]
        assert all(p.shape == (64, 64) for p in preds)  # scored at the label's resolution
        ref = numpy_seg_metrics(
            preds,
            [s["label"].numpy() for s in samples],
            k,
            seen=bench.seen_classes,
            regions=[s["regions"]["small"].numpy() for s in samples],
        )
        got = module.results["test"][bench.name]
        assert got["num_images"] == 3
        keys = ["mIoU", "pixel_acc", "small_mIoU"]
        keys += ["base_mIoU", "novel_mIoU", "hIoU"] if bench.seen_classes else []
        intervals = {f"{key}_ci95" for key in keys if key != "pixel_acc"}
        assert set(got) == {*keys, *intervals, "per_class_iou", "num_images", "ci_resamples"}
        for key in keys:
            assert got[key] == pytest.approx(ref[key], abs=1e-9), (bench.name, key)
        np.testing.assert_allclose(list(got["per_class_iou"].values()), ref["per_class_iou"], atol=1e-9)
        assert list(got["per_class_iou"]) == bench.class_names
    # the fixed model's predictions are not trivial: several classes, some pixels right
    all_preds = np.concatenate([np.asarray(Image.open(p)).ravel() for p in (tmp_path / "all").glob("*.png")])
    assert len(np.unique(all_preds)) >= 3
    assert module.results["test"]["all"]["pixel_acc"] > 0


def test_non_finite_loss_stops_training_naming_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mrovseg.train import build
    from mrovseg.training.trainer import make_trainer

    with composed("train", tmp_path, ["trainer.max_steps=5", "callbacks=none", "logger={}"]) as cfg:
        datamodule, module = build(cfg)
        trainer = make_trainer(cfg)
    forward = module.criterion.forward

    def nan_at_step_3(outputs: dict, targets: list) -> dict:
        losses = forward(outputs, targets)
        if module.global_step == 3:
            losses["loss_dice"] = losses["loss_dice"] * float("nan")
        return losses

    monkeypatch.setattr(module.criterion, "forward", nan_at_step_3)
    with pytest.raises(FloatingPointError, match=r"at step 3 .*'loss_dice': nan"):
        trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 3  # the bad step was not taken
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_optimizer_skips_clip_and_decays_lr_polynomially(tmp_path: Path) -> None:
    with composed(
        "train",
        tmp_path,
        ["module.optimizer.lr=1e-3", "module.optimizer.weight_decay=0.05", "module.scheduler.warmup_iters=0"],
    ) as cfg:
        module = build_module(build_config_of(cfg))
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)  # configure_optimizers reads it
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in module.model.named_parameters()}
    in_groups = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    trainable = [
        n for n, p in module.model.named_parameters() if p.requires_grad and not n.startswith("backbone.")
    ]
    assert sorted(in_groups) == sorted(trainable) and len(in_groups) == len(set(in_groups))
    assert not [n for n in in_groups if n.startswith("backbone.")]
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert {"adapter.queries", "classifier.query_pos", "classifier.void_embed"} <= no_decay_names
    keywords = ("queries", "query_pos", "void_embed", "pos_embed", "norm")
    decay_names = {names[id(p)] for p in decay["params"]}
    assert decay_names and all(p.ndim >= 2 for p in decay["params"])
    assert not [n for n in decay_names if any(k in n for k in keywords)]
    assert all(p.ndim <= 1 or any(k in names[id(p)] for k in keywords) for p in no_decay["params"])
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [1e-3 * max(0.0, 1 - min(s, 10) / 10) ** 0.9 for s in range(12)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)
