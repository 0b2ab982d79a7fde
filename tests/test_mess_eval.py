"""``python -m mrovseg.eval eval.benchmarks=[mess]`` end to end on the toy CLIP (DenseCLIP: no checkpoint):
the prepared MESS datasets are scored through the one evaluation path, and metrics.json holds each
dataset's mIoU and CoI-mIoU, equal to MESS's formulas on the saved predictions, and MESS's domain means."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrovseg.constants import REPO_ROOT
from mrovseg.data import mess
from mrovseg.eval import evaluate
from tests.data.mess_builders import MESS_LAYOUT, write_mess_dataset
from tests.helpers import TINY_TRAINER, composed

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mess") is None, reason='needs mess-benchmark: pip install "mrovseg[mess]"'
)


def mess_scores(
    preds: list[np.ndarray], labels: list[np.ndarray], k: int, coi: list[int]
) -> tuple[float, float]:
    """(mIoU, CoI-mIoU) in percent as MESSSemSegEvaluator computes them: a (K+1)² confusion matrix of
    (prediction, ground truth) with ignored pixels in the last column; IoU over classes in the ground
    truth or the prediction; CoI-mIoU = Σ IoU over the classes of interest in the ground truth / their
    number in the ground truth or the prediction."""
    conf = np.zeros((k + 1, k + 1), np.int64)
    for pred, label in zip(preds, labels):
        gt = np.where(label == 255, k, label).astype(np.int64)
        np.add.at(conf, (pred.astype(np.int64).ravel(), gt.ravel()), 1)
    tp = np.diag(conf)[:-1].astype(float)
    pos_gt, pos_pred = conf.sum(0)[:-1].astype(float), conf[:-1, :-1].sum(1).astype(float)
    valid, in_gt = pos_gt + pos_pred > 0, pos_gt > 0
    iou = np.where(valid, tp / np.maximum(pos_gt + pos_pred - tp, 1), np.nan)
    of_interest = np.bincount(coi, minlength=k).astype(bool)
    coi_miou = iou[of_interest & in_gt].sum() / (of_interest & valid).sum()
    return 100 * iou[valid].mean(), 100 * coi_miou


def test_eval_scores_the_prepared_mess_datasets(tmp_path: Path, caplog, capsys) -> None:
    root, out = tmp_path / "datasets", tmp_path / "run"
    labels = {name: write_mess_dataset(root, name, seed=i) for i, name in enumerate(MESS_LAYOUT)}
    overrides = [
        "experiment=dense_clip_toy",
        "data=ov_benchmarks",
        f"data.root={root}",
        "data.eval_short_side=32",
        "data.num_workers=0",
        "data.pin_memory=false",
        "eval.benchmarks=[mess]",
        "eval.save_predictions=true",
    ]
    with composed("eval", out, overrides, base=TINY_TRAINER) as cfg, caplog.at_level(logging.INFO):
        evaluate(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    printed = capsys.readouterr().out  # write_metrics: one line per benchmark, none for the domain means
    assert "[zerowaste] mIoU" in printed and "[bdd100k] mIoU" in printed and "[mess_domains]" not in printed
    assert list(metrics) == [
        "bdd100k",
        "zerowaste",
        mess.METRICS_KEY,
    ]  # benchmarks first (seeds.py reads the first)
    skipped = [r.message for r in caplog.records if r.name == mess.__name__ and "not prepared" in r.message]
    assert len(skipped) == 1 and "23 of 25" in skipped[0] and "foodseg103" in skipped[0]

    for name, raw in labels.items():
        spec = mess.mess_spec(name)
        preds = [
            np.asarray(Image.open(out / "predictions" / name / f"img_{i:03d}.png")) for i in range(len(raw))
        ]
        miou, coi_miou = mess_scores(preds, raw, spec.num_classes, list(spec.classes_of_interest))
        assert metrics[name]["num_images"] == 2
        assert metrics[name]["mIoU"] == pytest.approx(miou, abs=1e-6)
        assert metrics[name]["coi_mIoU"] == pytest.approx(coi_miou, abs=1e-6)

    domains = metrics[mess.METRICS_KEY]
    assert list(domains) == ["general", "engineering", "mean"]
    assert domains["general"]["datasets"] == {
        "bdd100k": {k: metrics["bdd100k"][k] for k in ("mIoU", "coi_mIoU")}
    }
    assert domains["engineering"]["coi_mIoU"] == pytest.approx(metrics["zerowaste"]["coi_mIoU"])
    assert domains["mean"]["mIoU"] == pytest.approx(
        (metrics["bdd100k"]["mIoU"] + metrics["zerowaste"]["mIoU"]) / 2
    )
    logged = [r.message for r in caplog.records if r.message.startswith("[MESS ")]
    assert [line.split("]")[0] for line in logged] == ["[MESS General", "[MESS Engineering", "[MESS Mean"]

    spec = importlib.util.spec_from_file_location("seeds", REPO_ROOT / "scripts" / "seeds.py")
    seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds)
    assert (
        seeds.load_metrics([out], None)[0]["mIoU"] == metrics["bdd100k"]["mIoU"]
    )  # still the first benchmark
