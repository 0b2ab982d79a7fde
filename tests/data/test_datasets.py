"""SemanticSegDataset on tiny prepared layouts of every benchmark, and its errors."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrovseg.constants import IGNORE_INDEX, REPO_ROOT
from mrovseg.data.benchmarks import BENCHMARKS, BenchmarkInfo, get_benchmark
from mrovseg.data.datasets import DatasetLayoutError, LabelValueError, SemanticSegDataset
from mrovseg.data.image_io import ImageReadError
from mrovseg.data.vocabularies import VOCABULARIES

from .builders import make_layout, sample_paths, write_image, write_label


def test_registry() -> None:
    assert set(BENCHMARKS) == {"coco_stuff", "ade150", "ade847", "pc59", "pc459", "voc20", "cityscapes"}
    for name, spec in BENCHMARKS.items():
        assert spec.class_names == VOCABULARIES[name]
        assert spec.ignore_value == (65535 if spec.label_suffix == ".tif" else 255)
        assert (REPO_ROOT / spec.prepare_script).is_file()
        assert set(spec.splits) == {"train", "val"}
        assert spec.info() == BenchmarkInfo(name, list(spec.class_names), None)
    assert (
        get_benchmark("ade847").layout("val").label_dir
        == "ADE20K_2021_17_01/annotations_detectron2/validation"
    )
    with pytest.raises(KeyError, match="known"):
        get_benchmark("ade")


@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_each_benchmark_loads(tmp_path: Path, benchmark: str) -> None:
    raw = make_layout(tmp_path, benchmark, n=2)
    spec = get_benchmark(benchmark)
    ds = SemanticSegDataset(tmp_path, benchmark, "val")
    assert len(ds) == 2 and ds.num_classes == spec.num_classes
    for i, key in enumerate(sorted(raw)):
        sample = ds[i]
        image, label = sample["image"], sample["label"]
        assert image.dtype == torch.float32 and image.shape == (3, 12, 16)
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert label.dtype == torch.int64 and label.shape == (12, 16)
        expected = raw[key].copy()
        expected[expected == spec.ignore_value] = IGNORE_INDEX
        np.testing.assert_array_equal(label.numpy(), expected)
        assert label[-1, -1] == IGNORE_INDEX and label[0, 1] == spec.num_classes - 1
        assert sample["name"] == sample_paths(tmp_path, spec, "val", key)[0].stem


def test_voc_is_listed_from_labels(tmp_path: Path) -> None:
    make_layout(tmp_path, "voc20", n=2)
    spec = get_benchmark("voc20")
    extra, _ = sample_paths(tmp_path, spec, "val", "unlabelled_train_image")
    write_image(extra, np.zeros((4, 4, 3), np.uint8))  # JPEGImages holds every split's images
    assert len(SemanticSegDataset(tmp_path, "voc20", "val")) == 2
    _, orphan = sample_paths(tmp_path, spec, "val", "no_image")
    write_label(orphan, np.zeros((4, 4)))
    with pytest.raises(DatasetLayoutError, match=r"label .*no_image\.png has no image"):
        SemanticSegDataset(tmp_path, "voc20", "val")


def test_image_read_in_stored_orientation(tmp_path: Path) -> None:
    spec = get_benchmark("ade150")
    image_path, label_path = sample_paths(tmp_path, spec, "val", "rotated")
    image_path.parent.mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("L", (16, 12), 90).save(image_path, exif=exif.tobytes())  # grayscale JPEG with a rotation tag
    write_label(label_path, np.zeros((12, 16)))
    sample = SemanticSegDataset(tmp_path, "ade150", "val")[0]
    assert sample["image"].shape == (3, 12, 16)  # aligned with the label, not rotated
    assert torch.allclose(sample["image"][:, 0, 0], torch.full((3,), 90 / 255), atol=2 / 255)


def test_missing_root_and_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"root .*nowhere does not exist.*DETECTRON2_DATASETS"):
        SemanticSegDataset(tmp_path / "nowhere", "ade150", "val")
    make_layout(tmp_path, "ade150", split="val")
    with pytest.raises(
        DatasetLayoutError, match=r"image folder .*images/training is missing.*prepare_ade150\.py"
    ):
        SemanticSegDataset(tmp_path, "ade150", "train")
    with pytest.raises(KeyError, match="no split 'test'"):
        SemanticSegDataset(tmp_path, "ade150", "test")


def test_missing_label_and_empty_split(tmp_path: Path) -> None:
    make_layout(tmp_path, "pc459", n=2)
    spec = get_benchmark("pc459")
    image, label = sample_paths(tmp_path, spec, "val", "lonely")
    write_image(image, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetLayoutError) as err:
        SemanticSegDataset(tmp_path, "pc459", "val")
    msg = str(err.value)
    assert "lonely.jpg has no label" in msg and str(label) in msg and "scripts/prepare_pc459.py" in msg
    assert "pcontext_full/val/label" in msg
    empty = tmp_path / "empty"
    (empty / "pcontext" / "val" / "image").mkdir(parents=True)
    (empty / "pcontext" / "val" / "label").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"no image files \*\.jpg"):
        SemanticSegDataset(empty, "pc59", "val")


@pytest.mark.parametrize(("benchmark", "bad"), [("ade150", 150), ("ade847", 900), ("cityscapes", 19)])
def test_label_value_out_of_range(tmp_path: Path, benchmark: str, bad: int) -> None:
    raw = make_layout(tmp_path, benchmark, n=1)
    spec = get_benchmark(benchmark)
    key = next(iter(raw))
    label = raw[key].copy()
    label[3, 3] = bad
    _, label_path = sample_paths(tmp_path, spec, "val", key)
    write_label(label_path, label)
    ds = SemanticSegDataset(tmp_path, benchmark, "val")
    with pytest.raises(
        LabelValueError, match=rf"{label_path.name} holds value {bad}, outside \[0, {spec.num_classes}\)"
    ):
        ds[0]
    ds.check_labels = False
    assert ds[0]["label"][3, 3] == bad


def test_unreadable_image_and_size_mismatch(tmp_path: Path) -> None:
    raw = make_layout(tmp_path, "coco_stuff", n=2)
    spec = get_benchmark("coco_stuff")
    keys = sorted(raw)
    image0, _ = sample_paths(tmp_path, spec, "val", keys[0])
    image0.write_bytes(b"\x00not a jpeg")
    ds = SemanticSegDataset(tmp_path, "coco_stuff", "val")
    with pytest.raises(ImageReadError, match=re.escape(image0.name) + r".*prepare_coco_stuff\.py"):
        ds[0]
    _, label1 = sample_paths(tmp_path, spec, "val", keys[1])
    write_label(label1, np.zeros((5, 5)))
    with pytest.raises(LabelValueError, match=r"is 5x5 but its image .* is 16x12"):
        ds[1]


def test_transform_is_applied(tmp_path: Path) -> None:
    make_layout(tmp_path, "pc59", n=1)

    def half(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return image[::2, ::2], label[::2, ::2]

    sample = SemanticSegDataset(tmp_path, "pc59", "val", transform=half)[0]
    assert sample["image"].shape == (3, 6, 8) and sample["label"].shape == (6, 8)
