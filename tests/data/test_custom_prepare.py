"""scripts/prepare_custom.py: COCO JSON (instances, stuff, panoptic) and colour masks → the custom
layout, with exact pixel values after conversion and after loading by ``data=custom``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.check import check_dataset
from mrovseg.data.custom import CustomSegDataset
from mrovseg.data.custom_layout import read_layout
from mrovseg.data.prepare.common import PrepareError
from mrovseg.data.prepare.custom import main as prepare_main
from mrovseg.data.prepare.custom_coco import prepare_coco
from mrovseg.data.prepare.custom_colour import prepare_colour
from mrovseg.data.prepare.custom_toy import prepare_toy
from mrovseg.data.synthetic import ToyWorld

from .custom_builders import rgb

mask_utils = pytest.importorskip("pycocotools.mask")

H, W = 6, 8


def _loaded(root: Path, split: str = "train") -> dict[str, np.ndarray]:
    """Labels of ``split`` as ``data=custom`` serves them for evaluation, by file stem."""
    layout = read_layout(root)
    ds = CustomSegDataset(layout, layout.pairs(split).pairs, train=False)
    return {ds[i]["name"]: ds[i]["label"].numpy() for i in range(len(ds))}


def _images(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(rgb(H, W, seed=i)).save(folder / name)
    return folder


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    """A polygon covering pixels x0 <= x < x1, y0 <= y < y1 (pycocotools rasterisation)."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _instances(tmp_path: Path) -> tuple[Path, Path]:
    images = _images(tmp_path / "src", ["a.png", "b.png"])
    cat_b = np.zeros((H, W), np.uint8, order="F")
    cat_b[0:2, 0:3] = 1
    rle = mask_utils.encode(cat_b)
    rle["counts"] = rle["counts"].decode("ascii")  # compressed RLE, as in JSON files
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W},
            {"id": 2, "file_name": "b.png", "height": H, "width": W},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "table"}, {"id": 9, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "segmentation": _rect(2, 3, 4, 5), "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "segmentation": _rect(0, 2, 8, 6), "iscrowd": 0},
            # a crowd region, uncompressed column-major RLE: columns 6 and 7
            {
                "id": 3,
                "image_id": 1,
                "category_id": 9,
                "segmentation": {"size": [H, W], "counts": [36, 12]},
                "iscrowd": 1,
            },
            {"id": 4, "image_id": 2, "category_id": 3, "segmentation": rle, "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return images, path


def test_coco_instances_follow_the_overlap_rule(tmp_path: Path) -> None:
    images, ann = _instances(tmp_path)
    out = tmp_path / "ds"
    report = prepare_coco(out, "train", images, [ann])
    assert (out / "classes.txt").read_text().splitlines() == ["background", "cat", "table", "person"]
    expected_a = np.zeros((H, W), np.int64)
    expected_a[:, 6:8] = 3  # crowd person
    expected_a[2:6, :] = 2  # table beats the crowd region although larger
    expected_a[3:5, 2:4] = 1  # the smaller cat beats the table although listed first
    expected_b = np.zeros((H, W), np.int64)
    expected_b[0:2, 0:3] = 1
    written = np.asarray(Image.open(out / "labels" / "train" / "a.png"))
    assert written.dtype == np.uint8
    np.testing.assert_array_equal(written, expected_a)
    loaded = _loaded(out)
    np.testing.assert_array_equal(loaded["a"], expected_a)
    np.testing.assert_array_equal(loaded["b"], expected_b)
    assert report.counts["train"]["overlapping pixels (smallest annotation wins)"] == 8 + 4
    assert (out / "images" / "train" / "a.png").read_bytes() == (images / "a.png").read_bytes()
    assert check_dataset(out, ["train"]).errors == []


def test_coco_unlabeled_ignore_and_stuff_files_merge(tmp_path: Path) -> None:
    images, ann = _instances(tmp_path)
    stuff = {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
        "categories": [{"id": 100, "name": "wall"}],
        "annotations": [{"id": 9, "image_id": 1, "category_id": 100, "segmentation": _rect(0, 0, 8, 2)}],
    }
    (tmp_path / "stuff.json").write_text(json.dumps(stuff))
    out = tmp_path / "ds"
    prepare_coco(out, "val", images, [ann, tmp_path / "stuff.json"], unlabeled="ignore")
    assert (out / "classes.txt").read_text().splitlines() == ["cat", "table", "person", "wall"]
    raw = np.asarray(Image.open(out / "labels" / "val" / "b.png"))
    assert raw[0, 0] == 0 and raw[5, 7] == 255  # cat, then uncovered = ignore 255
    loaded = _loaded(out, "val")
    assert loaded["b"][5, 7] == IGNORE_INDEX
    np.testing.assert_array_equal(loaded["a"][0:2, 0:6], np.full((2, 6), 3))  # wall (12 px) beats crowd


def test_coco_errors_name_the_file_and_value(tmp_path: Path) -> None:
    images, ann = _instances(tmp_path)
    clash = {"images": [], "annotations": [], "categories": [{"id": 3, "name": "dog"}]}
    (tmp_path / "clash.json").write_text(json.dumps(clash))
    with pytest.raises(PrepareError, match=r"category id 3 is 'dog' but another file calls it 'cat'"):
        prepare_coco(tmp_path / "ds", "train", images, [ann, tmp_path / "clash.json"])
    (images / "b.png").unlink()
    with pytest.raises(PrepareError, match=r"image 'b.png' \(id 2\) not found"):
        prepare_coco(tmp_path / "ds", "train", images, [ann])
    assert (
        prepare_main(
            [
                "coco",
                "--out",
                str(tmp_path / "ds"),
                "--split",
                "train",
                "--images",
                str(images),
                "--annotations",
                str(tmp_path / "none.json"),
            ]
        )
        == 2
    )


def test_coco_panoptic(tmp_path: Path) -> None:
    images = _images(tmp_path / "src", ["p.jpg"])
    ids = np.zeros((H, W), np.int64)
    ids[0:3, :] = 300  # sky: R = 44, G = 1
    ids[3:6, 2:5] = 5  # person
    seg = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    (tmp_path / "pan").mkdir()
    Image.fromarray(seg).save(tmp_path / "pan" / "p.png")
    data = {
        "images": [{"id": 1, "file_name": "p.jpg", "height": H, "width": W}],
        "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 50, "name": "sky", "isthing": 0}],
        "annotations": [
            {
                "image_id": 1,
                "file_name": "p.png",
                "segments_info": [{"id": 5, "category_id": 1}, {"id": 300, "category_id": 50}],
            }
        ],
    }
    (tmp_path / "panoptic.json").write_text(json.dumps(data))
    out = tmp_path / "ds"
    prepare_coco(out, "val", images, [tmp_path / "panoptic.json"], panoptic_masks=tmp_path / "pan")
    expected = np.zeros((H, W), np.int64)
    expected[0:3, :] = 2
    expected[3:6, 2:5] = 1
    np.testing.assert_array_equal(_loaded(out, "val")["p"], expected)
    ids[5, 7] = 77
    seg = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
    Image.fromarray(seg).save(tmp_path / "pan" / "p.png")
    with pytest.raises(PrepareError, match=r"p\.png holds segment id 77"):
        prepare_coco(
            tmp_path / "ds2", "val", images, [tmp_path / "panoptic.json"], panoptic_masks=tmp_path / "pan"
        )


COLOURS = {"road": (128, 64, 128), "car": (0, 0, 142), "__ignore__": (0, 0, 0)}


def _colour_masks(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    images = _images(tmp_path / "img", ["m.jpg"])
    expected = np.zeros((H, W), np.int64)  # road
    expected[2:4, 1:6] = 1  # car
    expected[5, :] = 255  # void
    palette = np.array([COLOURS["road"], COLOURS["car"], COLOURS["__ignore__"]], np.uint8)
    mask = palette[np.where(expected == 255, 2, expected)]
    (tmp_path / "masks").mkdir()
    pal = Image.fromarray(np.where(expected == 255, 2, expected).astype(np.uint8), mode="L").convert("P")
    pal.putpalette(palette.ravel().tolist() + [0] * (768 - 9))
    pal.save(tmp_path / "masks" / "m.png")  # a palette PNG, read through its palette
    assert (np.asarray(pal.convert("RGB")) == mask).all()
    return images, tmp_path / "masks", expected


@pytest.mark.parametrize("table_format", ["csv", "yaml"])
def test_colour_masks_with_a_table(tmp_path: Path, table_format: str) -> None:
    images, masks, expected = _colour_masks(tmp_path)
    if table_format == "csv":
        table = tmp_path / "colours.csv"
        table.write_text("name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in COLOURS.items()))
    else:
        table = tmp_path / "colours.yaml"
        table.write_text("".join(f"{n}: '#{r:02x}{g:02x}{b:02x}'\n" for n, (r, g, b) in COLOURS.items()))
    out = tmp_path / "ds"
    prepare_colour(out, "train", images, masks, table)
    assert (out / "classes.txt").read_text().splitlines() == ["road", "car"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "labels" / "train" / "m.png")), expected)
    loaded = _loaded(out)["m"]
    np.testing.assert_array_equal(loaded, np.where(expected == 255, IGNORE_INDEX, expected))


def test_unknown_colours_are_named_or_ignored(tmp_path: Path) -> None:
    images, masks, _ = _colour_masks(tmp_path)
    table = tmp_path / "colours.csv"
    table.write_text("name,r,g,b\nroad,128,64,128\ncar,0,0,142\n")
    with pytest.raises(
        PrepareError, match=r"m\.png holds colour\(s\) the table does not list: \(0, 0, 0\) \(8 pixels\)"
    ):
        prepare_colour(tmp_path / "ds", "train", images, masks, table)
    report = prepare_colour(tmp_path / "ds", "train", images, masks, table, unknown="ignore")
    assert report.counts["train"]["unknown-colour pixels ignored"] == 8
    # a second split must bring the same classes
    table.write_text("name,r,g,b\nroad,128,64,128\nbus,0,0,142\n__ignore__,0,0,0\n")
    with pytest.raises(PrepareError, match="first difference at line 2"):
        prepare_colour(tmp_path / "ds", "val", images, masks, table)


def test_toy_world_sample_dataset(tmp_path: Path) -> None:
    prepare_toy(tmp_path, num_train=2, num_val=1, eval_size=(64, 80))
    layout = read_layout(tmp_path)
    world = ToyWorld()
    assert layout.class_names == world.class_names
    assert layout.seen_classes == world.base_classes and layout.novel_classes == world.novel_classes
    val = _loaded(tmp_path, "val")["toy_val_00000"]
    assert val.shape == (64, 80) and set(np.unique(val)) <= set(range(31))
    assert check_dataset(tmp_path).errors == []


def test_cli_reports_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, masks, _ = _colour_masks(tmp_path)
    table = tmp_path / "colours.yaml"
    table.write_text("road: [128, 64, 128]\ncar: [0, 0, 142]\n__ignore__: [0, 0, 0]\n")
    args = ["colour", "--out", str(tmp_path / "ds"), "--split", "val", "--images", str(images)]
    assert prepare_main([*args, "--masks", str(masks), "--table", str(table)]) == 0
    out = capsys.readouterr().out
    assert "val: 1 images, 1 labels, 2 classes" in out and str(tmp_path / "ds" / "labels" / "val") in out
