"""The dataset check: every bad input gives a finding naming the file and the value, and none
reaches the loss (the datamodule refuses to start, the dataset refuses the sample)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrovseg.check_data import main as check_main
from mrovseg.data.check import DatasetCheckError, check_dataset
from mrovseg.data.custom import CustomDataModule, CustomSegDataset
from mrovseg.data.custom_layout import read_layout
from mrovseg.data.datasets import LabelValueError
from tests.helpers import describe, run_entry_point

from .custom_builders import make_custom, rgb

CLASSES = ["background", "sofa, couch", "cat"]


def _good(root: Path, n: int = 2, **kw) -> Path:
    labels = [np.array([[0, 1, 2], [2, 1, 0]], np.uint8) for _ in range(n)]
    return make_custom(root, CLASSES, {"train": labels, "val": labels}, **kw)


def _codes(root: Path, full: bool = True) -> dict[str, list[str]]:
    report = check_dataset(root, full=full)
    out: dict[str, list[str]] = {}
    for f in report.findings:
        out.setdefault(f.code, []).append(f.message)
    return out


def test_a_good_dataset_has_no_finding_and_a_pixel_table(tmp_path: Path) -> None:
    _good(tmp_path)
    report = check_dataset(tmp_path)
    assert report.findings == []
    assert report.pixel_counts["train"].tolist() == [4, 4, 4]  # 2 labels x 2 pixels of each class
    table = report.class_table()
    assert "sofa, couch" in table and "33.33" in table


def test_unmatched_files_are_listed_by_name(tmp_path: Path) -> None:
    _good(tmp_path)
    Image.fromarray(rgb(2, 3)).save(tmp_path / "images" / "train" / "lonely.jpg")
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "labels" / "val" / "orphan.png")
    codes = _codes(tmp_path, full=False)
    assert "lonely.jpg" in codes["image-without-label"][0]
    assert "orphan.png" in codes["label-without-image"][0]


def test_size_mismatch_names_both_sizes(tmp_path: Path) -> None:
    _good(tmp_path)
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "labels" / "val" / "val_1.png")
    (msg,) = _codes(tmp_path, full=False)["size-mismatch"]
    assert "val_1.png is 7x5 but val_1.png is 3x2" in msg


def test_bad_label_value_names_file_value_and_count(tmp_path: Path) -> None:
    _good(tmp_path)
    Image.fromarray(np.array([[0, 7, 7], [9, 1, 255]], np.uint8)).save(
        tmp_path / "labels" / "train" / "train_1.png"
    )
    (msg,) = _codes(tmp_path)["bad-label-value"]
    assert "train_1.png" in msg and "value 7 (2 pixels), value 9 (1 pixels)" in msg
    # the dataset refuses the sample with the same facts: it never reaches the loss
    layout = read_layout(tmp_path)
    ds = CustomSegDataset(layout, layout.pairs("train").pairs, train=True)
    ds[0]
    with pytest.raises(
        LabelValueError, match=r"train_1\.png holds value 7 \(2 pixels\), value 9 \(1 pixels\)"
    ):
        ds[1]


def test_class_name_problems_name_the_line(tmp_path: Path) -> None:
    _good(tmp_path)
    (tmp_path / "classes.txt").write_text("background\n\ncat\nCat\n")
    codes = _codes(tmp_path, full=False)
    assert "line 2 (label value 1) is empty" in codes["empty-class-name"][0]
    assert "'Cat' on line 4 (label value 3) repeats line 3" in codes["duplicate-class-name"][0]


def test_classes_that_never_occur_are_warned(tmp_path: Path) -> None:
    _good(tmp_path)
    (tmp_path / "classes.txt").write_text("background\nsofa\ncat\ndog\n")
    (warning,) = [m for m in _codes(tmp_path)["class-never-occurs"] if "in train" in m]
    assert "3 'dog'" in warning


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"novel": ["horse"]}, "novel class 'horse' is not in classes.txt"),
        ({"ignore_value": 2}, "ignore_value 2 is also the label value of class 'cat'"),
        ({"background": "maybe"}, "background is 'maybe'"),
        ({"colour": 1}, "unknown key 'colour'"),
    ],
)
def test_dataset_yaml_problems(tmp_path: Path, options: dict, expected: str) -> None:
    _good(tmp_path, options=options)
    messages = [m for ms in _codes(tmp_path, full=False).values() for m in ms]
    assert any(expected in m and "dataset.yaml" in m for m in messages), messages


def test_colour_label_and_duplicate_stems_and_missing_files(tmp_path: Path) -> None:
    _good(tmp_path)
    Image.fromarray(rgb(2, 3)).save(tmp_path / "labels" / "val" / "val_0.png")  # an RGB "label"
    Image.fromarray(rgb(2, 3)).save(tmp_path / "images" / "val" / "val_1.jpg")  # a second val_1
    codes = _codes(tmp_path, full=False)
    assert "val_0.png (image mode RGB)" in codes["label-not-index-map"][0]
    assert "val_1.jpg" in codes["duplicate-stem"][0] and "val_1.png" in codes["duplicate-stem"][0]
    (tmp_path / "classes.txt").unlink()
    assert "classes.txt not found" in _codes(tmp_path, full=False)["no-classes"][0]
    assert "does not exist" in _codes(tmp_path / "nowhere")["no-root"][0]


def test_datamodule_stops_before_any_batch_with_the_checker_messages(tmp_path: Path) -> None:
    _good(tmp_path, n=1)
    Image.fromarray(rgb(2, 3)).save(tmp_path / "images" / "train" / "lonely.jpg")
    dm = CustomDataModule(tmp_path, batch_size=4, num_workers=0, pin_memory=False)
    with pytest.raises(DatasetCheckError) as err:
        dm.setup("fit")
    text = str(err.value)
    assert "[image-without-label]" in text and "lonely.jpg" in text
    assert "[too-few-train-images] train has 1 image(s), fewer than data.batch_size=4" in text
    assert dm.train_dataset is None


def test_check_data_cli_reports_errors_and_writes_previews(tmp_path: Path) -> None:
    root = _good(tmp_path / "ds")
    ok = run_entry_point(
        "mrovseg.check_data",
        [f"data.root={root}", "data.batch_size=2", "--preview", "3", f"hydra.run.dir={tmp_path / 'ok'}"],
    )
    assert ok.returncode == 0, describe(ok)
    assert "0 error(s)" in ok.stdout and "pixel share per class" in ok.stdout
    previews = sorted(p.name for p in (tmp_path / "ok" / "preview").iterdir())
    assert previews == ["train_train_0.png", "val_val_0.png", "val_val_1.png"]  # spread over 4 pairs
    Image.fromarray(np.array([[0, 5, 1], [1, 1, 1]], np.uint8)).save(root / "labels" / "val" / "val_0.png")
    bad = run_entry_point(
        "mrovseg.check_data", [f"data.root={root}", "data.batch_size=2", f"hydra.run.dir={tmp_path / 'bad'}"]
    )
    assert bad.returncode == 1, describe(bad)
    assert "[bad-label-value]" in bad.stdout and "val_0.png holds value 5 (1 pixels)" in bad.stdout


def test_console_script_accepts_dash_dash_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr("sys.argv", ["mrovseg-check-data", "data.root=x", "--preview", "4", "--preview=2"])
    monkeypatch.setattr(
        "mrovseg.check_data._hydra_main", lambda: seen.append(list(__import__("sys").argv[1:]))
    )
    check_main()
    assert seen == [["data.root=x", "preview=4", "preview=2"]]


def test_preview_overlay_marks_classes_ignore_and_bad_values() -> None:
    from mrovseg.data.preview import overlay
    from mrovseg.serving.overlay import palette as class_colours

    image = np.full((1, 4, 3), 100, np.uint8)
    raw = np.array([[0, 2, 255, 9]], np.uint8)
    out = overlay(image, raw, num_classes=3, ignore=255, alpha=0.5).astype(int)
    colours = class_colours(3).astype(int)
    np.testing.assert_allclose(out[0, 0], (100 + colours[0]) / 2, atol=0.6)
    np.testing.assert_allclose(out[0, 1], (100 + colours[2]) / 2, atol=0.6)
    assert out[0, 2].tolist() == [30, 30, 30]  # ignore: darkened
    assert out[0, 3].tolist() == [255, 255, 255]  # not a class: white


def test_the_checker_imports_neither_torch_nor_lightning() -> None:
    code = (
        "import sys, mrovseg.check_data, mrovseg.data.check, mrovseg.data.preview; "
        "print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_check_data_refuses_a_dataset_it_cannot_check_by_its_config() -> None:
    """Chosen by the data config's keys, not by its ``_target_``: the toy world has no root/splits."""
    from mrovseg.check_data import run_check
    from tests.helpers import compose_with_hydra

    cfg = compose_with_hydra("check_data", ["data=toy"])
    with pytest.raises(ValueError, match="has no root, train_split, eval_split"):
        run_check(cfg)
