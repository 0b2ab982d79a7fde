"""data=custom: label formats load with exact values; vocabularies, novel classes, background, datamodule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.data.custom import CustomDataModule, CustomSegDataset
from mrovseg.data.custom_layout import read_layout

from .custom_builders import make_custom

CLASSES = ["background", "sofa, couch", "cat"]
# a 4x5 map with every class and the ignore value
LABEL8 = np.array(
    [[0, 0, 1, 1, 255], [0, 2, 2, 1, 255], [2, 2, 0, 0, 0], [1, 1, 1, 255, 2]],
    dtype=np.uint8,
)


def _load(root: Path, split: str = "val", train: bool = False) -> tuple[CustomSegDataset, list[dict]]:
    layout = read_layout(root)
    assert not layout.findings, layout.findings
    ds = CustomSegDataset(layout, layout.pairs(split).pairs, train=train)
    return ds, [ds[i] for i in range(len(ds))]


def test_uint8_png_labels_load_exactly(tmp_path: Path) -> None:
    make_custom(tmp_path, CLASSES, {"val": [LABEL8]})
    ds, (sample,) = _load(tmp_path)
    expected = LABEL8.astype(np.int64)
    expected[LABEL8 == 255] = IGNORE_INDEX
    assert sample["label"].dtype == torch.int64
    np.testing.assert_array_equal(sample["label"].numpy(), expected)
    image = np.asarray(Image.open(tmp_path / "images" / "val" / "val_0.png"))
    np.testing.assert_allclose(sample["image"].permute(1, 2, 0).numpy() * 255, image, atol=1e-4)
    assert ds.class_names == CLASSES and sample["name"] == "val_0"


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_uint16_labels_of_300_classes_load_exactly(tmp_path: Path, suffix: str) -> None:
    classes = [f"class {i}" for i in range(300)]
    label = np.array([[0, 299, 65535], [256, 255, 1]], dtype=np.uint16)
    make_custom(tmp_path, classes, {"val": [label]}, label_suffix=suffix)
    ds, (sample,) = _load(tmp_path)
    assert ds.samples[0][1].suffix == suffix
    np.testing.assert_array_equal(sample["label"].numpy(), [[0, 299, IGNORE_INDEX], [256, 255, 1]])


def test_tiff_uint8_labels_and_explicit_ignore_value(tmp_path: Path) -> None:
    label = np.array([[0, 1, 100], [2, 100, 0]], dtype=np.uint8)
    make_custom(tmp_path, CLASSES, {"val": [label]}, label_suffix=".tiff", options={"ignore_value": 100})
    _, (sample,) = _load(tmp_path)
    np.testing.assert_array_equal(sample["label"].numpy(), [[0, 1, IGNORE_INDEX], [2, IGNORE_INDEX, 0]])


def test_novel_classes_are_ignored_in_training_and_seen_in_evaluation(tmp_path: Path) -> None:
    make_custom(tmp_path, CLASSES, {"train": [LABEL8], "val": [LABEL8]}, options={"novel": ["couch"]})
    layout = read_layout(tmp_path)
    assert layout.class_names == CLASSES
    assert layout.seen_classes == [0, 2] and layout.novel_classes == [1]
    assert layout.train_class_names == ["background", "cat"]
    _, (train,) = _load(tmp_path, "train", train=True)
    expected = np.array([[0, 0, -1, -1, -1], [0, 1, 1, -1, -1], [1, 1, 0, 0, 0], [-1, -1, -1, -1, 1]])
    np.testing.assert_array_equal(train["label"].numpy(), expected)
    _, (val,) = _load(tmp_path, "val")
    assert int((val["label"] == 1).sum()) == int((LABEL8 == 1).sum())  # novel pixels scored in evaluation


def test_background_ignore_drops_value_zero(tmp_path: Path) -> None:
    make_custom(tmp_path, CLASSES, {"val": [LABEL8]}, options={"background": "ignore"})
    ds, (sample,) = _load(tmp_path)
    assert ds.class_names == ["sofa, couch", "cat"]
    expected = LABEL8.astype(np.int64) - 1
    expected[(LABEL8 == 0) | (LABEL8 == 255)] = IGNORE_INDEX
    np.testing.assert_array_equal(sample["label"].numpy(), expected)


def test_datamodule_serves_batches_and_one_named_benchmark(tmp_path: Path) -> None:
    labels = [np.full((20, 28), i % 3, np.uint8) for i in range(3)]
    make_custom(tmp_path, CLASSES, {"train": labels, "val": labels[:2]}, options={"novel": ["cat"]})
    dm = CustomDataModule(
        tmp_path,
        name="mine",
        crop_size=16,
        batch_size=2,
        num_workers=0,
        pin_memory=False,
        eval_short_side=None,
    )
    assert dm.train_class_names == ["background", "sofa, couch"]
    assert dm.eval_benchmarks == [BenchmarkInfo("mine", CLASSES, [0, 1])]
    dm.setup("fit")
    (batch,) = list(dm.train_dataloader())  # 3 samples, batch 2, drop_last
    assert batch["image"].shape == (2, 3, 16, 16) and batch["label"].shape == (2, 16, 16)
    assert set(batch["label"].unique().tolist()) <= {IGNORE_INDEX, 0, 1}  # cat (2) is novel: ignored
    (val_loader,) = dm.val_dataloader()
    val = next(iter(val_loader))
    assert val["image"].shape == (1, 3, 20, 28) and val["label"].shape == (1, 20, 28)


def test_experiment_benchmark_keys_are_accepted_and_ignored(tmp_path: Path) -> None:
    make_custom(tmp_path, CLASSES, {"val": [LABEL8]})
    dm = CustomDataModule(tmp_path, train_benchmark="coco_stuff", eval_benchmarks=["ade150"], num_workers=0)
    assert [b.name for b in dm.eval_benchmarks] == ["custom"]
