"""The COCO converter checks every annotation before writing (issue 28, item 2): a bad one is reported
with its id and the reason and skipped (or, with ``strict``, nothing is written); pycocotools never sees
a NaN, a far-away point or an RLE of the wrong size, so memory stays bounded by the image size."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mrovseg.constants import REPO_ROOT
from mrovseg.data.prepare.coco_checks import rle_string_counts
from mrovseg.data.prepare.common import PrepareError
from mrovseg.data.prepare.custom_coco import annotation_mask, prepare_coco

mask_utils = pytest.importorskip("pycocotools.mask")

H, W = 6, 8
GOOD = {"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[2, 3, 4, 3, 4, 5, 2, 5]]}


def _dataset(tmp_path: Path, bad: list[Any], categories: list[dict] | None = None) -> tuple[Path, Path]:
    """Images ``a.png`` (id 1) and a JSON with the good annotation followed by ``bad`` ones."""
    images = tmp_path / "src"
    images.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(images / "a.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
        "categories": categories or [{"id": 3, "name": "cat"}],
        "annotations": [GOOD, *bad],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))  # NaN and Infinity are written as JSON's (non-standard) NaN/Infinity
    return images, path


def _rle_string(mask: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")


def _bad(segmentation: Any = None, **fields: Any) -> dict[str, Any]:
    ann = {"id": 17, "image_id": 1, "category_id": 3, **fields}
    if segmentation is not None:
        ann["segmentation"] = segmentation
    return ann


ZIGZAG = [[0, 0, 8, 6] * 20 + [0, 6]]  # 41 points inside the image, a boundary of 326 px on 6x8 (limit 76)

CASES = {
    "missing segmentation": (_bad(), "it has no segmentation"),
    "null segmentation": ({**_bad(), "segmentation": None}, "it has no segmentation"),
    "NaN coordinate": (_bad([[1, 1, 5, float("nan"), 5, 5]]), "polygon 0 has a non-finite coordinate (nan)"),
    "infinite coordinate": (_bad([[1, 1, 5, 1, float("inf"), 5]]), "non-finite coordinate (inf)"),
    "string coordinate": (_bad([[1, 1, "5", 1, 5, 5]]), "polygon 0 has a non-numeric coordinate '5'"),
    "null coordinate": (_bad([[1, 1, None, 1, 5, 5]]), "non-numeric coordinate None"),
    "odd count": (
        _bad([[1, 1, 5, 1, 5, 5, 1]]),
        "polygon 0 has 7 coordinates; a polygon needs an even count",
    ),
    "two points": (_bad([[1, 1, 5, 1]]), "polygon 0 has 4 coordinates"),
    "flat list": (_bad([1, 1, 5, 1, 5, 5]), "polygon 0 is int '1', not a list of coordinates"),
    "empty list": (_bad([]), "empty list (no polygon)"),
    "far-away point": (
        _bad([[1, 1, 1e12, 1, 5, 5]]),
        "has the point (1e+12, 1), more than an image size off",
    ),
    "huge integer": (_bad([[1, 1, 10**400, 1, 5, 5]]), "polygon 0 has a coordinate too large for a number"),
    "boundary too long": (_bad(ZIGZAG), "boundary is 326 px long, more than the 76 px accepted on a 8x6"),
    "RLE of another size": (
        _bad({"size": [60, 80], "counts": [4800]}),
        "its RLE size [60, 80] is not the image's [height, width] = [6, 8]",
    ),
    "RLE counts too short": (_bad({"size": [H, W], "counts": [10, 5]}), "cover 15 pixels, not the 48"),
    "RLE counts too long": (_bad({"size": [H, W], "counts": [40, 5000]}), "cover 5040 pixels, not the 48"),
    "negative RLE count": (_bad({"size": [H, W], "counts": [50, -2]}), "not all non-negative integers"),
    "compressed RLE of another image": (
        _bad({"size": [H, W], "counts": _rle_string(np.ones((60, 80)))}),
        "compressed RLE counts are malformed or cover more than the image's 48 pixels",
    ),
    "garbage compressed RLE": (
        _bad({"size": [H, W], "counts": "~~~"}),
        "compressed RLE counts are malformed",
    ),
    "unknown format": (_bad("polygon"), "its segmentation is str, neither polygons nor an RLE"),
    "unknown image_id": (
        _bad([[1, 1, 5, 1, 5, 5]], image_id=99),
        "its image_id 99 is not in the images list",
    ),
    "unknown category_id": (
        _bad([[1, 1, 5, 1, 5, 5]], category_id=42),
        "its category_id 42 is not in the categories list",
    ),
    "missing category_id": (
        {"id": 17, "image_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        "category_id None",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_annotation_is_reported_and_skipped(
    case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ann, reason = CASES[case]
    images, path = _dataset(tmp_path, [ann])
    out = tmp_path / "ds"
    with caplog.at_level(logging.WARNING):
        report = prepare_coco(out, "train", images, [path])
    assert report.counts["train"]["rejected annotations"] == 1
    assert "1 rejected annotations" in report.summary()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("skipped ann.json, annotation 17: "), lines
    assert reason in lines[0], lines[0]
    expected = np.zeros((H, W), np.uint8)
    expected[3:5, 2:4] = 1  # the good annotation is written
    np.testing.assert_array_equal(np.asarray(Image.open(out / "labels" / "train" / "a.png")), expected)


@pytest.mark.parametrize("case", ["NaN coordinate", "RLE of another size", "unknown image_id"])
def test_strict_stops_before_writing(case: str, tmp_path: Path) -> None:
    ann, reason = CASES[case]
    images, path = _dataset(tmp_path, [ann, {**ann, "id": 18}])
    out = tmp_path / "ds"
    with pytest.raises(PrepareError) as err:
        prepare_coco(out, "train", images, [path], strict=True)
    message = str(err.value)
    assert message.startswith("2 annotation(s) rejected (strict: nothing written):")
    assert f"ann.json, annotation 17: {reason}" in message or reason in message
    assert "annotation 18" in message
    assert not out.exists()


def test_annotations_that_are_not_objects_are_named_by_position(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images, path = _dataset(tmp_path, [5])
    with caplog.at_level(logging.WARNING):
        prepare_coco(tmp_path / "ds", "train", images, [path])
    assert caplog.records[0].getMessage() == "skipped ann.json, annotation #1: it is int, not a JSON object"


@pytest.mark.parametrize(
    ("categories", "unlabeled", "message"),
    [
        (
            [{"id": 3, "name": "cat"}, {"id": 5, "name": "cat"}],
            "background",
            "category 5 'cat' has the name of category 3 'cat'; class names must differ beyond upper/lower case",
        ),
        ([{"id": 3, "name": "cat"}, {"id": 5, "name": "Cat"}], "ignore", "category 5 'Cat' has the name of"),
        (
            [{"id": 0, "name": "Background"}, {"id": 3, "name": "cat"}],
            "background",
            "category 0 'Background' has the name of class 0 'background' (uncovered pixels, --unlabeled "
            "background); class names must differ beyond upper/lower case: rename or merge them in the JSON; "
            "or pass --unlabeled ignore",
        ),
        (
            [{"id": 3, "name": "cat"}, {"id": "x", "name": "dog"}],
            "background",
            "needs an integer id and a name",
        ),
        ([{"id": 3, "name": "cat"}, {"id": 4, "name": " "}], "background", "needs an integer id and a name"),
    ],
)
def test_category_names_must_be_unique_up_to_case(
    categories: list[dict], unlabeled: str, message: str, tmp_path: Path
) -> None:
    images, path = _dataset(tmp_path, [], categories=categories)
    with pytest.raises(PrepareError) as err:
        prepare_coco(tmp_path / "ds", "train", images, [path], unlabeled=unlabeled)  # type: ignore[arg-type]
    assert message in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_a_background_category_is_fine_without_the_added_background(tmp_path: Path) -> None:
    images, path = _dataset(
        tmp_path, [], categories=[{"id": 0, "name": "background"}, {"id": 3, "name": "cat"}]
    )
    prepare_coco(tmp_path / "ds", "train", images, [path], unlabeled="ignore")
    assert (tmp_path / "ds" / "classes.txt").read_text().splitlines() == ["background", "cat"]


def test_bad_images_lists_are_named(tmp_path: Path) -> None:
    images, path = _dataset(tmp_path, [])
    data = json.loads(path.read_text())
    data["images"][0]["width"] = "8"
    path.write_text(json.dumps(data))
    with pytest.raises(PrepareError, match=r"ann.json: images\[0\] needs an integer id, width and height"):
        prepare_coco(tmp_path / "ds", "train", images, [path])


def test_annotation_mask_refuses_what_pycocotools_cannot_take() -> None:
    with pytest.raises(PrepareError, match="non-finite coordinate"):
        annotation_mask([[1, 1, 5, float("nan"), 5, 5]], H, W)
    with pytest.raises(PrepareError, match="RLE size"):
        annotation_mask({"size": [H + 1, W], "counts": [56]}, H, W)


def test_compressed_rle_counts_are_read_as_pycocotools_reads_them() -> None:
    rng = np.random.default_rng(0)
    for shape, p in [((6, 8), 0.5), ((40, 30), 0.05), ((200, 300), 0.999), ((17, 5), 0.0)]:
        mask = rng.random(shape) < p
        counts = rle_string_counts(_rle_string(mask), mask.size)
        assert counts is not None and sum(counts) == mask.size
        runs = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)  # column-major runs from 0s
        np.testing.assert_array_equal(runs.reshape(shape[1], shape[0]).T, mask)
    assert rle_string_counts(_rle_string(np.ones((6, 8))), 47) is None  # more than the limit


NAN_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 * 10**9, 4 * 10**9))
sys.argv = ["prepare_custom.py", *sys.argv[1:]]
from mrovseg.data.prepare.custom import main
sys.exit(main())
"""


@pytest.mark.parametrize("strict", [False, True])
def test_a_nan_polygon_under_a_4_gb_memory_limit(tmp_path: Path, strict: bool) -> None:
    images = tmp_path / "src"
    images.mkdir()
    Image.fromarray(np.zeros((480, 640, 3), np.uint8)).save(images / "photo.png")
    data = {
        "images": [{"id": 1, "file_name": "photo.png", "height": 480, "width": 640}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[10, 10, 100, float("nan"), 100, 100]],
            },
            {"id": 8, "image_id": 1, "category_id": 1, "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]]},
        ],
    }
    (tmp_path / "nan.json").write_text(json.dumps(data))
    out = tmp_path / "ds"
    args = ["coco", "--out", str(out), "--split", "train", "--images", str(images)]
    args += ["--annotations", str(tmp_path / "nan.json"), *(["--strict"] if strict else [])]
    proc = subprocess.run(
        [sys.executable, "-c", NAN_SCRIPT, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = proc.stdout + proc.stderr
    reason = "nan.json, annotation 7: polygon 0 has a non-finite coordinate (nan)"
    if strict:
        assert proc.returncode == 2, text
        assert "error: 1 annotation(s) rejected (strict: nothing written):" in proc.stderr
        assert reason in proc.stderr and not out.exists()
    else:
        assert proc.returncode == 0, text
        assert f"skipped {reason}" in proc.stderr
        assert "train: 1 images, 1 labels, 1 rejected annotations" in proc.stdout
        label = np.asarray(Image.open(out / "labels" / "train" / "photo.png"))
        assert label.sum() == 100 and label[10:20, 10:20].all()  # annotation 8
