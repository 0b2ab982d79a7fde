"""BenchmarkDataModule: training batches, several evaluation benchmarks at once, lazy layout checks."""

from pathlib import Path

import pytest
import torch

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.data.datamodule import BenchmarkDataModule
from mrovseg.data.datasets import DatasetLayoutError
from mrovseg.data.vocabularies import ADE_150, COCO_STUFF_171, PC_459

from .builders import make_layout


def _dm(root: Path, **kw) -> BenchmarkDataModule:
    defaults = dict(crop_size=16, batch_size=2, num_workers=0, pin_memory=False, eval_short_side=24)
    return BenchmarkDataModule(root, **{**defaults, **kw})


def test_training_module(tmp_path: Path) -> None:
    make_layout(tmp_path, "coco_stuff", split="train", n=3, shape=(20, 28))
    make_layout(tmp_path, "coco_stuff", split="val", n=2, shape=(12, 16))
    dm = _dm(tmp_path, train_benchmark="coco_stuff", eval_benchmarks=["coco_stuff"])
    assert dm.train_class_names == list(COCO_STUFF_171)
    assert dm.eval_benchmarks == [BenchmarkInfo("coco_stuff", list(COCO_STUFF_171), None)]
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 1  # 3 samples, batch 2, drop_last
    batch = batches[0]
    assert batch["image"].shape == (2, 3, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (2, 16, 16) and batch["label"].dtype == torch.int64
    labels = batch["label"]
    assert bool(((labels >= 0) & (labels < 171) | (labels == IGNORE_INDEX)).all())
    assert len(batch["name"]) == 2
    (val_loader,) = dm.val_dataloader()
    val = next(iter(val_loader))
    assert val["image"].shape == (1, 3, 24, 32) and val["label"].shape == (1, 12, 16)


def test_evaluation_module_serves_each_benchmark(tmp_path: Path) -> None:
    make_layout(tmp_path, "ade150", n=2, shape=(12, 16))
    make_layout(tmp_path, "pc459", n=3, shape=(10, 10))
    dm = _dm(tmp_path, train_benchmark=None, eval_benchmarks=["pc459", "ade150"])
    assert dm.train_class_names == []
    assert [b.name for b in dm.eval_benchmarks] == ["pc459", "ade150"]
    assert dm.eval_benchmarks[0].class_names == list(PC_459) and dm.eval_benchmarks[1].class_names == list(
        ADE_150
    )
    assert all(b.seen_classes is None for b in dm.eval_benchmarks)
    dm.setup("test")
    loaders = dm.test_dataloader()
    assert [len(loader) for loader in loaders] == [3, 2]
    pc = next(iter(loaders[0]))
    assert pc["label"].shape == (1, 10, 10) and int(pc["label"].max()) == 458
    assert int(pc["label"][0, -1, -1]) == IGNORE_INDEX  # 65535 on disk
    with pytest.raises(RuntimeError, match="evaluation-only"):
        dm.train_dataloader()


def test_errors_are_lazy_and_clear(tmp_path: Path) -> None:
    dm = _dm(tmp_path / "missing", train_benchmark=None, eval_benchmarks=["ade847"])  # no disk access yet
    with pytest.raises(DatasetLayoutError, match=r"missing does not exist.*prepare_ade847\.py"):
        dm.setup("validate")
    with pytest.raises(KeyError, match="unknown benchmark"):
        _dm(tmp_path, eval_benchmarks=["ade999"])
    with pytest.raises(ValueError, match="twice"):
        _dm(tmp_path, eval_benchmarks=["ade150", "ade150"])
