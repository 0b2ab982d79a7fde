"""MESS (mrovseg.data.mess): datasets from MESS's catalog, the prepared-dataset selection, the errors, the
classes-of-interest mean and MESS's per-domain aggregation."""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data import mess
from mrovseg.data.datamodule import BenchmarkDataModule
from mrovseg.data.datasets import DatasetLayoutError
from mrovseg.eval import select_benchmarks
from mrovseg.training.metrics import SegMetrics

from .mess_builders import MESS_LAYOUT, write_mess_dataset

#: Tests that read MESS's catalog (the others run without the package).
needs_mess = pytest.mark.skipif(
    importlib.util.find_spec("mess") is None, reason='needs mess-benchmark: pip install "mrovseg[mess]"'
)


def _select(names: list[str], root: Path) -> list[str]:
    """``eval.benchmarks=names`` applied as ``python -m mrovseg.eval`` applies it."""
    cfg = OmegaConf.create(
        {
            "eval": {"benchmarks": names},
            "data": {"_target_": "mrovseg.data.datamodule.BenchmarkDataModule", "root": str(root)},
        }
    )
    select_benchmarks(cfg)
    assert cfg.data.train_benchmark is None
    return list(cfg.data.eval_benchmarks)


@needs_mess
def test_specs_come_from_the_catalog_with_the_layout_mess_writes() -> None:
    zerowaste, bdd = mess.mess_spec("zerowaste"), mess.mess_spec("bdd100k")
    for spec in (zerowaste, bdd):
        image_dir, label_dir, image_suffix, label_suffix, k = MESS_LAYOUT[spec.name]
        lay = spec.layout("test")
        assert (lay.image_dir, lay.label_dir) == (image_dir, label_dir) and spec.layout("val") == lay
        assert (spec.image_suffix, spec.label_suffix, spec.num_classes) == (image_suffix, label_suffix, k)
        assert spec.ignore_value == 255
    assert zerowaste.class_names[:2] == ("background or trash", "rigid plastic")
    assert zerowaste.background_class == 0 and zerowaste.classes_of_interest == (1, 2, 3, 4)
    assert bdd.background_class is None and bdd.classes_of_interest == tuple(range(19))  # MESS: 255 = none
    info = zerowaste.info()
    assert (info.name, info.classes_of_interest, info.domain) == ("zerowaste", [1, 2, 3, 4], "engineering")
    assert info.seen_classes is None
    assert "mess.prepare_all_datasets --dataset_dir /data" in zerowaste.describe_layout("/data", "test")


@needs_mess
def test_the_22_datasets_in_mess_domains() -> None:
    specs = [mess.mess_spec(name) for name in mess.MESS_DATASETS]  # every catalog entry resolves
    per_domain = {d: sorted({s.name.split("_")[0] if "paxray" in s.name else s.name for s in specs if s.domain == d}) for d in mess.DOMAINS}  # fmt: skip
    assert {d: len(n) for d, n in per_domain.items()} == {
        "general": 6, "earth_monitoring": 5, "medical": 4, "engineering": 4, "agriculture_biology": 3,
    }  # fmt: skip
    assert per_domain["agriculture_biology"] == ["cub_200", "cwfid", "suim"]
    assert mess.mess_spec("dram").background_class == 11  # DRAM's background is its last class
    assert 11 not in mess.mess_spec("dram").classes_of_interest


@needs_mess
def test_the_datamodule_reads_mess_datasets(tmp_path: Path) -> None:
    raw = write_mess_dataset(tmp_path, "zerowaste")
    dm = BenchmarkDataModule(
        tmp_path, train_benchmark=None, eval_benchmarks=["zerowaste"], num_workers=0, pin_memory=False
    )
    (info,) = dm.eval_benchmarks
    assert info.classes_of_interest == [1, 2, 3, 4] and info.domain == "engineering"
    dm.setup("test")
    samples = list(dm.test_dataloader()[0])
    assert [s["name"][0] for s in samples] == ["img_000", "img_001"]
    expected = torch.from_numpy(raw[1].astype(np.int64))
    expected[expected == 255] = IGNORE_INDEX
    assert torch.equal(samples[1]["label"][0], expected)


@needs_mess
def test_mess_means_the_prepared_datasets_and_logs_the_others(tmp_path: Path, caplog) -> None:
    write_mess_dataset(tmp_path, "zerowaste")
    write_mess_dataset(tmp_path, "bdd100k")
    (tmp_path / "FoodSeg103" / "Images" / "img_dir" / "test").mkdir(parents=True)  # images only: not prepared
    with caplog.at_level(logging.WARNING, logger=mess.__name__):
        names = _select(["ade150", "mess", "zerowaste"], tmp_path)
    assert names == ["ade150", "bdd100k", "zerowaste"]  # MESS's order, each once
    (record,) = [r for r in caplog.records if r.name == mess.__name__]
    assert (
        "23 of 25" in record.message and "foodseg103" in record.message and "zerowaste" not in record.message
    )
    assert _select(["paxray", "cwfid"], tmp_path) == [*mess.GROUPS["paxray"], "cwfid"]  # no disk needed


@needs_mess
def test_mess_with_nothing_prepared_says_how_to_prepare(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetLayoutError, match=r"DETECTRON2_DATASETS.*mess\.prepare_all_datasets --dataset_dir"
    ):
        _select(["mess"], tmp_path / "empty")


@needs_mess
def test_a_missing_single_dataset_fails_at_setup_naming_the_layout(tmp_path: Path) -> None:
    dm = BenchmarkDataModule(tmp_path, train_benchmark=None, eval_benchmarks=["foodseg103"], num_workers=0)
    with pytest.raises(DatasetLayoutError, match=r"FoodSeg103.*mess\.prepare_all_datasets"):
        dm.setup("test")


def test_names_outside_the_registry_and_mess_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        KeyError, match=r"unknown benchmark .*foodseg.*; known: ade150.*the MESS datasets mhp_v1, foodseg103"
    ):
        BenchmarkDataModule(tmp_path, train_benchmark=None, eval_benchmarks=["foodseg"])
    with pytest.raises(KeyError, match=r"several MESS datasets.*eval.benchmarks=\[mess\]"):
        BenchmarkDataModule(tmp_path, train_benchmark=None, eval_benchmarks=["mess"])


def test_without_the_package_mess_names_say_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mess", None)  # import mess -> ImportError
    monkeypatch.setitem(sys.modules, "mess.datasets", None)
    hint = r'pip install "mrovseg\[mess\]"'
    with pytest.raises(ImportError, match=hint):
        _select(["mess"], tmp_path)
    with pytest.raises(ImportError, match=hint):
        BenchmarkDataModule(tmp_path, train_benchmark=None, eval_benchmarks=["foodseg103"])
    assert _select(["ade150"], tmp_path) == ["ade150"]  # the other benchmarks do not need it


@needs_mess
def test_coi_miou_is_messs_mean_over_the_classes_of_interest() -> None:
    """ZeroWaste (K = 5, background 0): CoI-mIoU = Σ IoU over CoI present in the ground truth / number of
    CoI present in the ground truth or the prediction (MESSSemSegEvaluator)."""
    spec = mess.mess_spec("zerowaste")
    metric = SegMetrics(5, IGNORE_INDEX, list(spec.class_names), classes_of_interest=spec.classes_of_interest)
    target = torch.tensor([[0, 0, 0, 1, 1, 2, 2, IGNORE_INDEX]])
    preds = torch.tensor([[0, 1, 0, 1, 1, 2, 4, 3]])  # class 3 only where ignored: absent; 4 predicted only
    metric.update(preds, target)
    res = metric.compute()
    # IoU: background 2/3, class 1 2/3, class 2 1/2, class 3 absent (NaN), class 4 0 (predicted only)
    iou = res["per_class_iou"].tolist()
    assert iou[:3] == pytest.approx([200 / 3, 200 / 3, 50.0]) and math.isnan(iou[3]) and iou[4] == 0.0
    assert float(res["mIoU"]) == pytest.approx((200 / 3 + 200 / 3 + 50 + 0) / 4)  # the background counts
    assert float(res["coi_mIoU"]) == pytest.approx((200 / 3 + 50 + 0) / 3)  # it does not


def _entry(miou: float, coi: float) -> dict[str, float]:
    return {"mIoU": miou, "coi_mIoU": coi, "num_images": 2}


def test_domain_means_follow_mess_evaluation() -> None:
    results = {
        "ade150": _entry(99.0, 99.0),  # not MESS: ignored
        "zerowaste": _entry(40.0, 30.0),
        "bdd100k": _entry(20.0, 20.0),
        "foodseg103": _entry(10.0, float("nan")),  # a missing value is skipped, as pandas' mean does
        "paxray_lungs": _entry(60.0, 50.0),
        "paxray_bones": _entry(40.0, 30.0),
    }
    domains = mess.domain_means(results)
    assert list(domains) == ["general", "medical", "engineering", "mean"]  # MESS's order, then the mean
    general = domains["general"]
    assert general["title"] == "General" and list(general["datasets"]) == ["foodseg103", "bdd100k"]
    assert general["mIoU"] == pytest.approx(15.0) and general["coi_mIoU"] == pytest.approx(20.0)
    assert domains["medical"]["datasets"] == {"paxray": {"mIoU": 50.0, "coi_mIoU": 40.0}}  # PAXRay-4: one
    assert domains["engineering"]["mIoU"] == 40.0
    mean = domains["mean"]  # over the 4 datasets, not over the 3 domains
    assert mean["title"] == "Mean" and mean["mIoU"] == pytest.approx((40 + 20 + 10 + 50) / 4)
    assert mean["coi_mIoU"] == pytest.approx((30 + 20 + 40) / 3)
    assert mess.domain_means({"ade150": _entry(1.0, 1.0)}) == {}
