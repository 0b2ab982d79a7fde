"""Prepare scripts: raw-format fixtures -> the layout, with exact label values; then the dataset reads it."""

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.datasets import SemanticSegDataset
from mrovseg.data.image_io import load_label
from mrovseg.data.prepare import (
    PrepareError,
    prepare_ade150,
    prepare_ade847,
    prepare_cityscapes,
    prepare_coco_stuff,
    prepare_pcontext,
    prepare_voc20,
)
from mrovseg.data.prepare import ade150 as ade150_cli
from mrovseg.data.prepare import voc as voc_cli

from .builders import write_image, write_label


def _image(path: Path, shape: tuple[int, int]) -> None:
    write_image(path, np.full((*shape, 3), 128, dtype=np.uint8))


def _check_dataset(root: Path, benchmark: str, expected: np.ndarray) -> None:
    (sample,) = list(SemanticSegDataset(root, benchmark, "val"))
    np.testing.assert_array_equal(sample["label"].numpy(), expected)


def test_coco_stuff(tmp_path: Path) -> None:
    src, root = tmp_path / "coco_download", tmp_path / "datasets"
    # raw value = COCO id - 1: person(0), street sign(11, unused), stop sign(12), banner(91), wood(181), unlabeled
    raw = np.array([[0, 11, 12], [91, 181, 255]], dtype=np.uint8)
    write_label(src / "stuffthingmaps" / "val2017" / "000000000139.png", raw)
    _image(src / "val2017" / "000000000139.jpg", raw.shape)
    report = prepare_coco_stuff(src, root, splits=["val2017"])
    out = load_label(root / "coco" / "stuffthingmaps_detectron2" / "val2017" / "000000000139.png")
    np.testing.assert_array_equal(out, [[0, 255, 11], [80, 170, 255]])
    assert out.dtype == np.uint8
    assert (root / "coco" / "val2017" / "000000000139.jpg").is_file()
    assert report.counts["val2017"] == {"labels": 1, "images": 1}
    assert "1 labels" in report.summary()
    _check_dataset(root, "coco_stuff", np.array([[0, -1, 11], [80, 170, -1]]))


def test_ade150(tmp_path: Path) -> None:
    src, root = tmp_path / "ADEChallengeData2016", tmp_path / "datasets"
    raw = np.array([[0, 1, 2], [37, 149, 150]], dtype=np.uint8)
    write_label(src / "annotations" / "validation" / "ADE_val_00000001.png", raw)
    _image(src / "images" / "validation" / "ADE_val_00000001.jpg", raw.shape)
    prepare_ade150(src, root, splits=["validation"], image_mode="copy")
    out = load_label(
        root / "ADEChallengeData2016" / "annotations_detectron2" / "validation" / "ADE_val_00000001.png"
    )
    np.testing.assert_array_equal(out, [[255, 0, 1], [36, 148, 149]])
    assert not (root / "ADEChallengeData2016" / "images" / "validation" / "ADE_val_00000001.jpg").is_symlink()
    _check_dataset(root, "ade150", np.array([[-1, 0, 1], [36, 148, 149]]))


def test_ade150_in_place_and_bad_value(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    src = root / "ADEChallengeData2016"
    bad = np.array([[0, 151]], dtype=np.uint8)
    write_label(src / "annotations" / "validation" / "x.png", bad)
    _image(src / "images" / "validation" / "x.jpg", bad.shape)
    with pytest.raises(PrepareError, match=r"x\.png holds value 151"):
        prepare_ade150(src, root, splits=["validation"])


def _ade_seg_colour(class_id: int, r_extra: int = 3) -> tuple[int, int, int]:
    # ADE20K-full encodes the object class as (R // 10) * 256 + G
    return (class_id // 256) * 10 + r_extra, class_id % 256, 0


def test_ade847(tmp_path: Path) -> None:
    src, root = tmp_path / "ADE20K_2021_17_01", tmp_path / "datasets"
    scene = src / "images" / "ADE" / "validation" / "home_or_hotel" / "bedroom"
    ids = [[2978, 2420, 3148], [0, 5, 312]]  # wall, sky, adding machine; none, unlisted id, building
    seg = np.array([[_ade_seg_colour(c) for c in row] for row in ids], dtype=np.uint8)
    scene.mkdir(parents=True)
    Image.fromarray(seg).save(scene / "ADE_val_00000001_seg.png")
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(scene / "ADE_val_00000001.jpg")  # grayscale JPEG
    report = prepare_ade847(src, root)
    out_dir = root / "ADE20K_2021_17_01"
    out = load_label(out_dir / "annotations_detectron2" / "validation" / "ADE_val_00000001.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [[0, 2, 846], [65535, 65535, 1]])
    assert report.counts["validation"] == {"images": 1, "labels": 1}
    _check_dataset(root, "ade847", np.array([[0, 2, 846], [-1, -1, 1]]))


def test_ade847_resizes_like_maskformer(tmp_path: Path) -> None:
    src, root = tmp_path / "ADE20K_2021_17_01", tmp_path / "datasets"
    scene = src / "images" / "ADE" / "validation" / "s"
    scene.mkdir(parents=True)
    ids = np.full((20, 30), 2978)
    ids[:, 15:] = 2420
    seg = np.stack([(ids // 256) * 10, ids % 256, np.zeros_like(ids)], -1).astype(np.uint8)
    Image.fromarray(seg).save(scene / "ADE_val_00000002_seg.png")
    write_image(scene / "ADE_val_00000002.jpg", np.zeros((20, 30, 3), np.uint8))
    prepare_ade847(src, root, max_short_side=10)
    out = load_label(
        root / "ADE20K_2021_17_01" / "annotations_detectron2" / "validation" / "ADE_val_00000002.tif"
    )
    assert out.shape == (10, 15)
    assert set(np.unique(out[:, :7])) == {0} and set(np.unique(out[:, 8:])) == {2}
    with Image.open(
        root / "ADE20K_2021_17_01" / "images_detectron2" / "validation" / "ADE_val_00000002.jpg"
    ) as im:
        assert im.size == (15, 10)


def _voc2010(tmp_path: Path, label_map: np.ndarray) -> Path:
    src = tmp_path / "VOC2010"
    (src / "ImageSets" / "Main").mkdir(parents=True)
    (src / "ImageSets" / "Main" / "val.txt").write_text("2008_000002\n2008_000003\n")
    (src / "trainval").mkdir()
    scipy.io.savemat(src / "trainval" / "2008_000002.mat", {"LabelMap": label_map.astype(np.uint16)})
    for image_id in ("2008_000002", "2008_000003"):
        _image(src / "JPEGImages" / f"{image_id}.jpg", label_map.shape)
    return src


# LabelMap ids (labels.txt): 0 none, 1 accordion, 2 aeroplane, 397 table, 458 wood, 459 wool
PC_RAW = np.array([[0, 1, 2], [397, 458, 459]])


def test_pc59(tmp_path: Path) -> None:
    src, root = _voc2010(tmp_path, PC_RAW), tmp_path / "datasets"
    report = prepare_pcontext(src, root, 59, splits=["val"])
    out = load_label(root / "pcontext" / "val" / "label" / "2008_000002.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[255, 255, 0], [49, 58, 255]])  # 49 = "diningtable"
    assert report.counts["val"]["skipped (no .mat)"] == 1
    assert (root / "pcontext" / "val" / "image" / "2008_000002.jpg").is_symlink()
    _check_dataset(root, "pc59", np.array([[-1, -1, 0], [49, 58, -1]]))


def test_pc459(tmp_path: Path) -> None:
    src, root = _voc2010(tmp_path, PC_RAW), tmp_path / "datasets"
    prepare_pcontext(src, root, 459, splits=["val"])
    out = load_label(root / "pcontext_full" / "val" / "label" / "2008_000002.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [[65535, 0, 1], [396, 457, 458]])
    _check_dataset(root, "pc459", np.array([[-1, 0, 1], [396, 457, 458]]))


def test_pcontext_errors(tmp_path: Path) -> None:
    src = _voc2010(tmp_path, np.array([[460]]))
    with pytest.raises(PrepareError, match=r"2008_000002\.mat holds value 460"):
        prepare_pcontext(src, tmp_path / "out", 459, splits=["val"])
    scipy.io.savemat(src / "trainval" / "2008_000002.mat", {"Other": np.zeros((2, 2))})
    with pytest.raises(PrepareError, match="no variable 'LabelMap'"):
        prepare_pcontext(src, tmp_path / "out", 59, splits=["val"])
    with pytest.raises(PrepareError, match=r"ImageSets/Main/train\.txt"):
        prepare_pcontext(src, tmp_path / "out", 59, splits=["train"])


@pytest.mark.parametrize("folder", ["SegmentationClass", "SegmentationClassAug"])
def test_voc20(tmp_path: Path, folder: str) -> None:
    src, root = tmp_path / "VOC2012", tmp_path / "datasets"
    (src / "ImageSets" / "Segmentation").mkdir(parents=True)
    (src / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n2007_000042\n")
    raw = np.array([[0, 1, 15], [20, 255, 0]], dtype=np.uint8)
    for image_id, label in (("2007_000033", raw), ("2007_000042", np.zeros_like(raw))):
        path = src / folder / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(label)
        if folder == "SegmentationClass":  # official labels are palette PNGs
            img = img.convert("P")
            img.putpalette([(i * 37) % 256 for i in range(768)])
        img.save(path)
        _image(src / "JPEGImages" / f"{image_id}.jpg", raw.shape)
    report = prepare_voc20(src, root, splits=["val"])
    out_dir = root / "VOC2012" / "annotations_detectron2" / "val"
    np.testing.assert_array_equal(load_label(out_dir / "2007_000033.png"), [[255, 0, 14], [19, 255, 255]])
    assert not (out_dir / "2007_000042.png").exists()  # background only: not scored (as SAN)
    assert report.counts["val"] == {"labels": 1, "images": 1, "skipped (background only)": 1}
    _check_dataset(root, "voc20", np.array([[-1, 0, 14], [19, -1, -1]]))


def test_cityscapes(tmp_path: Path) -> None:
    src, root = tmp_path / "cityscapes_download", tmp_path / "datasets"
    raw = np.array([[7, 33, 0], [9, 26, 24]], dtype=np.uint8)
    name = "frankfurt_000000_000294"
    write_label(src / "gtFine" / "val" / "frankfurt" / f"{name}_gtFine_labelIds.png", raw)
    write_image(
        src / "leftImg8bit" / "val" / "frankfurt" / f"{name}_leftImg8bit.png", np.zeros((2, 3, 3), np.uint8)
    )
    prepare_cityscapes(src, root, splits=["val"])
    out = load_label(
        root / "cityscapes" / "gtFine" / "val" / "frankfurt" / f"{name}_gtFine_labelTrainIds.png"
    )
    np.testing.assert_array_equal(out, [[0, 18, 255], [255, 13, 11]])
    _check_dataset(root, "cityscapes", np.array([[0, 18, -1], [-1, 13, 11]]))
    assert IGNORE_INDEX == -1


def test_missing_inputs_name_path_and_layout(tmp_path: Path) -> None:
    cases = [
        (lambda: prepare_coco_stuff(tmp_path / "nope", tmp_path), "COCO train2017 image folder not found"),
        (
            lambda: prepare_ade847(tmp_path / "nope", tmp_path),
            "ADE20K-full validation image folder not found",
        ),
        (lambda: prepare_cityscapes(tmp_path / "nope", tmp_path), "leftImg8bit folder not found"),
        (lambda: prepare_voc20(tmp_path / "nope", tmp_path), "VOC2012 JPEGImages folder not found"),
    ]
    for run, message in cases:
        with pytest.raises(PrepareError) as err:
            run()
        assert message in str(err.value) and str(tmp_path / "nope") in str(err.value)
        assert "expected:" in str(err.value)


def test_image_without_label_source(tmp_path: Path) -> None:
    src = tmp_path / "ADEChallengeData2016"
    write_label(src / "annotations" / "validation" / "a.png", np.zeros((2, 2)))
    (src / "images" / "validation").mkdir(parents=True)
    with pytest.raises(PrepareError, match=re.escape(str(src / "images" / "validation" / "a.jpg"))):
        prepare_ade150(src, tmp_path / "out", splits=["validation"])


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "ADEChallengeData2016"
    for i in range(3):
        write_label(src / "annotations" / "validation" / f"{i}.png", np.full((2, 2), i + 1))
        _image(src / "images" / "validation" / f"{i}.jpg", (2, 2))
    argv = ["--src", str(src), "--root", str(tmp_path / "out"), "--splits", "validation", "--workers", "2"]
    assert ade150_cli.main(argv) == 0
    assert "validation: 3 images, 3 labels" in capsys.readouterr().out
    out = tmp_path / "out" / "ADEChallengeData2016" / "annotations_detectron2" / "validation"
    assert [int(load_label(out / f"{i}.png")[0, 0]) for i in range(3)] == [0, 1, 2]
    assert voc_cli.main(["--src", str(tmp_path / "missing"), "--root", str(tmp_path)]) == 2
    assert "JPEGImages folder not found" in capsys.readouterr().err
