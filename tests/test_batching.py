"""Images per optimizer step (``global_batch_size``) and the ViT experiments' batch and evaluation size."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from mrovseg.data.transforms import resize_short_side
from mrovseg.model.inference import sliding_window
from mrovseg.training.batching import accumulation_steps, apply_global_batch
from tests.helpers import composed


@pytest.mark.parametrize(
    ("global_batch", "per_device", "world", "steps"),
    [(32, 16, 1, 2), (32, 16, 2, 1), (32, 8, 2, 2), (32, 4, 8, 1), (32, 8, 1, 4), (4, 2, 1, 2)],
)
def test_accumulation_makes_the_global_batch(
    global_batch: int, per_device: int, world: int, steps: int
) -> None:
    assert accumulation_steps(global_batch, per_device, world) == steps
    assert per_device * world * steps == global_batch


def test_a_global_batch_that_does_not_divide_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"16 × 4 devices = 64 .* data.batch_size in \[1, 2, 4, 8\]"):
        accumulation_steps(32, 16, 4)
    with pytest.raises(ValueError, match="must all be positive"):
        accumulation_steps(32, 0, 1)


def _trainer(**kwargs) -> L.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False}
    options["enable_progress_bar"] = False
    return L.Trainer(**{**options, **kwargs})


def test_apply_global_batch_sets_accumulation_and_keeps_validation_in_steps(caplog) -> None:
    trainer = _trainer(val_check_interval=5, check_val_every_n_epoch=None)
    with caplog.at_level(logging.INFO, logger="mrovseg.training.batching"):
        assert apply_global_batch(trainer, 32, 16) == 32
    assert trainer.accumulate_grad_batches == 2
    assert trainer.val_check_interval == 10  # batches: every 5 optimizer steps
    assert "16 images per device × 1 device(s) × 2 accumulated = 32 images per optimizer step" in caplog.text


def test_without_a_global_batch_the_trainer_is_unchanged() -> None:
    trainer = _trainer(accumulate_grad_batches=3, val_check_interval=5, check_val_every_n_epoch=None)
    assert apply_global_batch(trainer, None, 4) == 12
    assert trainer.accumulate_grad_batches == 3 and trainer.val_check_interval == 5


def test_two_processes_halve_the_accumulation() -> None:
    trainer = _trainer(devices=2, strategy="ddp")  # built only: no process is started
    assert trainer.world_size == 2
    assert apply_global_batch(trainer, 32, 16) == 32
    assert trainer.accumulate_grad_batches == 1
    with pytest.raises(ValueError, match="contradicts"):
        apply_global_batch(_trainer(accumulate_grad_batches=3), 32, 16)


@pytest.mark.parametrize("experiment", ["vitb16", "vitl14"])
def test_vit_experiments_train_32_images_per_step(tmp_path: Path, experiment: str) -> None:
    with composed("train", tmp_path, [f"experiment={experiment}"], base=()) as cfg:
        assert cfg.global_batch_size == 32
        per_device = cfg.data.batch_size
    for world in (1, 2):
        assert per_device * world * accumulation_steps(32, per_device, world) == 32


@pytest.mark.parametrize("experiment", ["vitb16", "vitl14", "vitb16_cityscapes"])
def test_evaluation_short_side_is_the_sliding_window(tmp_path: Path, experiment: str) -> None:
    """Short side == window == crop: windows span the short side exactly, with no padded border."""
    with composed("eval", tmp_path, [f"experiment={experiment}"], base=()) as cfg:
        assert cfg.data.eval_short_side == cfg.module.window == cfg.data.crop_size


def test_vitl14_windows_hold_no_padding(tmp_path: Path) -> None:
    with composed("eval", tmp_path, ["experiment=vitl14"], base=()) as cfg:
        short, window = cfg.data.eval_short_side, cfg.module.window
    image = resize_short_side(np.full((480, 640, 3), 200, np.uint8), short)
    assert image.shape[:2] == (644, 859)
    seen = []

    def score_fn(crops: torch.Tensor) -> torch.Tensor:
        seen.append(crops)
        return torch.ones(crops.shape[0], 2, 4, 4)

    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    scores = sliding_window(score_fn, tensor, window, window_batch=8)
    assert scores.shape == (2, 644, 859)
    crops = torch.cat(seen)
    assert crops.shape[-2:] == (644, 644)
    assert crops.min() > 0  # padding would be zeros


class _CountValidations(L.Callback):
    def __init__(self) -> None:
        self.at_steps: list[int] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.at_steps.append(trainer.global_step)


def test_training_accumulates_to_the_global_batch(tmp_path: Path) -> None:
    """2 optimizer steps of 4 images with 2 per batch: 4 batches, validation after the second step."""
    from mrovseg.train import build
    from mrovseg.training.trainer import make_trainer

    overrides = ["global_batch_size=4", "data.batch_size=2", "test=false", "logger={}", "callbacks=none"]
    with composed("train", tmp_path, overrides) as cfg:
        L.seed_everything(cfg.seed)
        datamodule, module = build(cfg)
        trainer = make_trainer(cfg)
        apply_global_batch(trainer, cfg.global_batch_size, cfg.data.batch_size)
        validations = _CountValidations()
        trainer.callbacks.append(validations)
        trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 2
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 4
    assert validations.at_steps == [2]  # val_check_interval=2 stays in optimizer steps
    assert module.results["val"]["toy"]["num_images"] == 2


def test_flip_averages_the_mirrored_scores() -> None:
    """A score that is the column's position inside its window (0 at the left edge, 1 at the right):
    with one window over the whole image the mirrored pass flipped back scores 1 − that, so their mean
    is 0.5 everywhere; a mirror-symmetric score (the image itself) is unchanged by the flip."""
    ramp = torch.linspace(0, 1, 32)

    def position(windows: torch.Tensor) -> torch.Tensor:
        return ramp.expand(windows.shape[0], 1, 32, 32).clone()

    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = sliding_window(position, image, 32)
    torch.testing.assert_close(plain[0], ramp.expand(32, 32))
    torch.testing.assert_close(sliding_window(position, image, 32, flip=True), torch.full((1, 32, 32), 0.5))
    wide = torch.rand(3, 40, 90, generator=torch.Generator().manual_seed(1))
    same = sliding_window(lambda w: w, wide, 32, flip=True)
    torch.testing.assert_close(same, sliding_window(lambda w: w, wide, 32))
    torch.testing.assert_close(same, wide)
