"""MGCA-style training end to end on a datamodule without masks (``experiment=mgca_toy``, tiny)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from mrovseg.data.caption_datamodule import ToyCaptionDataModule, collate_captions
from mrovseg.train import train
from mrovseg.training.mgca import batch_nouns
from tests.helpers import TINY_DATA, TINY_TRAINER, composed

TINY_MGCA = [
    "experiment=mgca_toy",
    "model.dim=16",
    "model.depth=1",
    "callbacks.wandb_eval.num_images=1",
    *TINY_DATA,
    *TINY_TRAINER,
]


class NoMaskBatch(dict):
    """A batch that fails loudly if anything asks for a label or mask."""

    def __getitem__(self, key: str) -> Any:
        if key in ("label", "labels", "mask", "masks", "regions"):
            raise AssertionError(f"training read batch[{key!r}]")
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 (must go through __getitem__)


class NoMaskDataModule(ToyCaptionDataModule):
    """Toy caption scenes whose training batches hold no mask and refuse to be asked for one."""

    def train_dataloader(self):  # type: ignore[override]
        loader = super().train_dataloader()
        loader.collate_fn = lambda samples: NoMaskBatch(collate_captions(samples))
        return loader


def test_batch_nouns_adds_extras_once_per_image() -> None:
    flat, owner = batch_nouns([["red circle", "Red  circle"], []], ["background"])
    assert flat == ["red circle", "background", "background"] and owner == [0, 0, 1]


def test_mgca_trains_without_any_mask(tmp_path: Path) -> None:
    with composed("train", tmp_path, TINY_MGCA, base=[]) as cfg:
        cfg.data._target_ = f"{__name__}.NoMaskDataModule"
        out = train(cfg)
    metrics = out["callback_metrics"]
    for key in ("train/loss", "train/loss_object", "train/loss_region", "train/loss_pixel"):
        assert math.isfinite(metrics[key]), key
    assert 0.0 <= metrics["test/toy/mIoU"] <= 100.0
    assert (tmp_path / "metrics.json").is_file()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert not any(k.startswith("model.backbone.") for k in ckpt["state_dict"])
