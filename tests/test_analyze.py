"""Tests of the error analysis (``mrovseg.analysis``, ``python -m mrovseg.analyze``): confusions, size bins
and both oracles on hand-made label maps, checked against hand computations; one run of the entry point
on the toy world (the training-free dense-CLIP baseline, no checkpoint)."""

from __future__ import annotations

import builtins
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mrovseg.analysis.collect import AnalysisOptions, BenchmarkAnalysis
from mrovseg.analysis.components import class_components, majority
from mrovseg.analysis.figures import require_matplotlib
from mrovseg.analysis.oracle import gt_masks_model_classes, model_masks_gt_classes
from mrovseg.analysis.size import bin_labels, size_bins
from mrovseg.analysis.tables import Confusion, frequent_block, mean_iou, size_rows, top_confusions
from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo
from tests.helpers import TINY_DATA, TINY_TRAINER, composed

I = IGNORE_INDEX  # noqa: E741


def analysis_of(
    preds: list[np.ndarray], labels: list[np.ndarray], k: int, **options: Any
) -> BenchmarkAnalysis:
    bench = BenchmarkInfo("hand", [f"c{i}" for i in range(k)])
    analysis = BenchmarkAnalysis(bench, AnalysisOptions(**options))
    for pred, label in zip(preds, labels):
        analysis.update(np.asarray(pred), np.asarray(label))
    return analysis


# ---------------------------------------------------------------- confusions
def test_confusion_pairs_are_ranked_by_share_of_the_ground_truth_class() -> None:
    label = np.array([[0, 0, 0, 0, 1], [1, 1, 1, 2, 2]])
    pred = np.array([[0, 0, 0, 1, 1], [1, 2, 2, 2, 2]])
    confmat = analysis_of([pred], [label], 3).confmat
    np.testing.assert_array_equal(confmat, [[3, 1, 0], [0, 2, 2], [0, 0, 2]])
    # class 1: 2 of its 4 pixels → class 2 (50 %); class 0: 1 of 4 → class 1 (25 %)
    assert top_confusions(confmat, 20) == [Confusion(1, 2, 2, 50.0), Confusion(0, 1, 1, 25.0)]
    assert top_confusions(confmat, 1) == [Confusion(1, 2, 2, 50.0)]


def test_heat_map_block_keeps_the_most_frequent_classes_and_an_other_column() -> None:
    confmat = np.array([[3, 1, 0], [0, 2, 2], [0, 0, 2]])
    classes, shares = frequent_block(confmat, 2)
    np.testing.assert_array_equal(classes, [0, 1])  # 4 pixels each (ties: smaller index); class 2 has 2
    np.testing.assert_allclose(shares, [[75, 25, 0], [0, 50, 50]])  # last column: predicted as class 2
    classes, shares = frequent_block(np.array([[5, 0], [0, 0]]), 20)
    np.testing.assert_array_equal(classes, [0])  # classes without ground-truth pixels are left out
    np.testing.assert_allclose(shares, [[100, 0]])


# ---------------------------------------------------------------- objects and size bins
def test_components_follow_the_connectivity_and_skip_ignored_pixels() -> None:
    label = np.array([[1, 0, 0], [0, 1, 0], [0, 0, I]])
    eight = class_components(label, label != I, connectivity=8)
    assert eight.count == 2 and eight.classes.tolist() == [0, 1] and eight.sizes.tolist() == [6, 2]
    four = class_components(label, label != I, connectivity=4)
    assert four.classes.tolist() == [0, 0, 1, 1] and sorted(four.sizes.tolist()) == [1, 1, 3, 3]
    assert eight.ids[2, 2] == 0 and four.ids[2, 2] == 0


def test_majority_breaks_ties_towards_the_smaller_class() -> None:
    label = np.array([[1, 1, 2, 2]])
    segments = class_components(np.zeros((1, 4), dtype=np.int64))  # one segment over all 4 pixels
    valid = np.ones((1, 4), dtype=bool)
    assert majority(segments, label, valid, 3).tolist() == [1]
    valid[0, 0] = False
    assert majority(segments, label, valid, 3).tolist() == [2]
    assert majority(segments, label, np.zeros((1, 4), dtype=bool), 3).tolist() == [-1]


def test_size_bins_and_their_labels() -> None:
    sizes = np.array([1, 10, 99, 100, 999, 1000, 5000])
    assert size_bins(sizes, 10_000, (0.001, 0.01, 0.1)).tolist() == [0, 1, 1, 2, 2, 3, 3]
    assert bin_labels((0.001, 0.01, 0.1)) == ["< 0.1 %", "0.1 – 1 %", "1 – 10 %", "≥ 10 %"]


def test_size_statistics_per_bin() -> None:
    """100-pixel image, bins < 5 %, 5-20 %, ≥ 20 %: a 2×2 square and a single pixel of class 1 (bin 0),
    a 3×4 block of class 2 (bin 1), the background around them (83 pixels, bin 2)."""
    label = np.zeros((10, 10), dtype=np.int64)
    label[1:3, 1:3] = 1
    label[9, 9] = 1
    label[5:8, 4:8] = 2
    pred = label.copy()
    pred[1, 1] = 0  # square: 3 of 4 right
    pred[9, 9] = 2  # single pixel: wrong
    pred[0, 9] = pred[9, 0] = 1  # 2 background pixels wrong
    analysis = analysis_of([pred], [label], 3, size_bins=(0.05, 0.2))
    assert analysis.size_objects.tolist() == [2, 1, 1]
    rows = size_rows(analysis.size_confmat, analysis.size_objects)
    assert [r["pixels"] for r in rows] == [5, 12, 83]
    # bin 0: 3 of 5 pixels right; only class 1 in its ground truth: IoU = 3 / (5 + 3 - 3)
    assert rows[0]["pixel_acc"] == pytest.approx(60.0) and rows[0]["mIoU"] == pytest.approx(60.0)
    assert rows[1]["pixel_acc"] == pytest.approx(100.0) and rows[1]["mIoU"] == pytest.approx(100.0)
    # bin 2: background 81 of 83 right, IoU = 81 / (83 + 81 - 81)
    assert rows[2]["pixel_acc"] == pytest.approx(8100 / 83) and rows[2]["mIoU"] == pytest.approx(8100 / 83)
    assert analysis.gt_segments == 4


# ---------------------------------------------------------------- oracles
LABEL = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
PRED = np.array([[2, 2, 2, 1], [0, 0, 2, 1], [0, 0, 0, 1]])


def test_oracle_maps_by_hand() -> None:
    # ground-truth masks: class 0 segment → predicted 0 on 4 of 6; class 1 segment → 1 on 3 of 6
    np.testing.assert_array_equal(gt_masks_model_classes(PRED, LABEL, 3), LABEL)
    # model's segments (8-connected): the 2s (ground truth 0, 0, 1, 1: a tie → 0), the 0s (four 0, one 1
    # → 0), the 1s (→ 1)
    expected = np.array([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(model_masks_gt_classes(PRED, LABEL, 3), expected)


def test_oracle_mious_by_hand() -> None:
    analysis = analysis_of([PRED], [LABEL], 3)
    # model: class 0 IoU 4/7, class 1 3/6, class 2 only predicted: 0 (detectron2 v0.6 counts it)
    assert mean_iou(analysis.confmat)["mIoU"] == pytest.approx((400 / 7 + 50 + 0) / 3)
    assert mean_iou(analysis.oracle_gt_masks)["mIoU"] == pytest.approx(100.0)
    # model's masks, ground-truth classes: class 0 IoU 6/9, class 1 3/6, class 2 absent
    np.testing.assert_array_equal(analysis.oracle_model_masks, [[6, 0, 0], [3, 3, 0], [0, 0, 0]])
    assert mean_iou(analysis.oracle_model_masks)["mIoU"] == pytest.approx((600 / 9 + 50) / 2)
    assert analysis.pred_segments == 3 and analysis.gt_segments == 2 and analysis.num_images == 1


def test_ignored_pixels_neither_vote_nor_count() -> None:
    label = np.array([[1, 1, I, I]])
    pred = np.array([[0, 1, 1, 1]])
    analysis = analysis_of([pred], [label], 2)
    np.testing.assert_array_equal(analysis.confmat, [[0, 0], [1, 1]])
    # ground-truth segment (pixels 0-1) sees 0 and 1: tie → 0, so both pixels become class 0
    np.testing.assert_array_equal(analysis.oracle_gt_masks, [[0, 0], [2, 0]])
    # model's segment of 1s (pixels 1-3) has one voting pixel (class 1); the lone 0 (pixel 0) votes 1
    np.testing.assert_array_equal(analysis.oracle_model_masks, [[0, 0], [0, 2]])
    assert [mean_iou(m)["mIoU"] for m in analysis_confmats(analysis)] == pytest.approx([25.0, 0.0, 100.0])


def analysis_confmats(analysis: BenchmarkAnalysis) -> list[np.ndarray]:
    return [analysis.confmat, analysis.oracle_gt_masks, analysis.oracle_model_masks]


def test_base_and_novel_oracle_mious() -> None:
    bench = BenchmarkInfo("hand", ["c0", "c1", "c2"], seen_classes=[0, 2])
    analysis = BenchmarkAnalysis(bench)
    analysis.update(PRED, LABEL)
    scores = mean_iou(analysis.oracle_model_masks, bench.seen_classes)
    assert scores == pytest.approx({"mIoU": (600 / 9 + 50) / 2, "base_mIoU": 600 / 9, "novel_mIoU": 50.0})


# ---------------------------------------------------------------- options and errors
def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"strictly increasing fractions .* got \[0.1, 0.01\]"):
        AnalysisOptions.from_config({"size_bins": [0.1, 0.01]})
    with pytest.raises(ValueError, match="connectivity must be 4 or 8, got 6"):
        AnalysisOptions.from_config({"connectivity": 6})
    with pytest.raises(ValueError, match=r"unknown analysis options \['bins'\]"):
        AnalysisOptions.from_config({"bins": [0.1]})
    with pytest.raises(ValueError, match=r"hand: label values must lie in \[0, 3\), got \[0, 5\]"):
        analysis_of([np.zeros((1, 2), dtype=np.int64)], [np.array([[0, 5]])], 3)


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "matplotlib":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=re.escape('pip install "mrovseg[analysis]"')):
        require_matplotlib()


# ---------------------------------------------------------------- the entry point
SECTIONS = (
    "## 1. Per-class IoU",
    "## 2. Confusions",
    "## 3. IoU by object size",
    "## 4. Oracle breakdown: masks or recognition?",
)


def test_analyze_writes_a_report_with_figures(tmp_path: Path) -> None:
    from mrovseg.analyze import analyze

    overrides = ["experiment=dense_clip_toy", "data.num_test=4"]
    with composed("analyze", tmp_path, overrides, base=TINY_DATA + TINY_TRAINER) as cfg:
        assert cfg.task_name == "analyze" and cfg.eval.analysis is True
        results = analyze(cfg)
    folder = tmp_path / "analysis" / "toy"
    report = (folder / "report.md").read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())["toy"]
    assert metrics["num_images"] == 4 and metrics["mIoU"] == pytest.approx(results["toy"]["mIoU"])

    lines = report.splitlines()
    assert lines[0] == "# Error analysis: toy"
    assert "| model | `mrovseg.model.training_free.dense_clip.DenseCLIP` |" in lines
    assert "| checkpoint | none (nothing trained) |" in lines
    assert "| benchmark | toy (31 classes; 25 seen in training (base), 6 novel) |" in lines
    assert "| images | 4 |" in lines
    assert f"| mIoU | **{metrics['mIoU']:.2f}**" in report
    positions = [report.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "binned at 0.1 %, 1 %, 10 %" in report
    model_row = next(line for line in lines if line.startswith("| model | ") and "`" not in line)
    assert model_row.split(" | ")[1] == f"{metrics['mIoU']:.1f}"  # the oracle table's own confusion matrix

    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert sorted(figures) == ["confusion.png", "oracle.png", "per_class_iou.png", "size.png"]
    for name in figures:
        with Image.open(folder / name) as image:
            image.verify()
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and min(image.size) >= 200


def test_report_of_a_large_vocabulary_without_a_base_novel_split(tmp_path: Path) -> None:
    from mrovseg.analysis.report import write_report

    k = 70
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(k), 20).reshape(20, k)  # every class in one column
    pred = np.where(rng.random(label.shape) < 0.5, label, (label + 1) % k)
    analysis = analysis_of([pred], [label], k)
    entry = {"mIoU": mean_iou(analysis.confmat)["mIoU"], "pixel_acc": 50.0}
    report = write_report(analysis, entry, tmp_path, "toy.Model", "model.ckpt").read_text()
    table = [line for line in report.splitlines() if re.match(r"\| \d+ \| c\d+ \|", line)]
    assert len(table) == 40 and table[0].startswith("| 1 | ") and table[-1].startswith("| 70 | ")
    assert "| rank | class | IoU | % of GT pixels | % of predicted pixels |" in report  # no split column
    assert "The table shows the best and worst 20." in report
    assert "| checkpoint | `model.ckpt` |" in report and "| images | 1 |" in report
    assert "base mIoU" not in report  # no seen classes: mIoU only
    assert len(re.findall(r"^\| c\d+ → c\d+ \| ", report, flags=re.M)) == 20


# ---------------------------------------------------------------- proposals of mask-based models
def test_query_assignment_is_confidence_times_mask_probability() -> None:
    import torch

    from mrovseg.analysis.proposals import query_assignment

    logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])  # K=2 + "no object"
    masks = torch.tensor([[[[0.0, 3.0]], [[3.0, 3.2]]]])  # (1 window, 2 queries, 1, 2)
    # confidences: query 0 e⁴/(e⁴+2) = 0.965, query 1 1/3. Pixel 0: 0.965·σ(0) = 0.48 vs 0.33·σ(3) = 0.32;
    # pixel 1: 0.965·σ(3) = 0.92 vs 0.33·σ(3.2) = 0.32 → query 0 on both
    assert query_assignment({"pred_logits": logits, "pred_masks": masks}).tolist() == [[[0, 0]]]
    # OVSeg's ensembled probabilities are used when present: confidences 0.5 and 0.9
    probs = torch.tensor([[[0.5, 0.5], [0.1, 0.9]]])
    # pixel 0: 0.5·σ(0) = 0.25 vs 0.9·σ(3) = 0.86 → 1; pixel 1: 0.5·σ(3) = 0.48 vs 0.9·σ(3.2) = 0.87 → 1
    owner = query_assignment({"pred_probs": probs, "pred_logits": logits, "pred_masks": masks})
    assert owner.tolist() == [[[1, 1]]]
    masks[0, 0, 0, 1] = 10.0  # query 0 sure of pixel 1 and of its class: 1.0·σ(10) ≈ 1.0 vs 0.87 → 0
    probs[0, 0] = torch.tensor([0.0, 1.0])
    owner = query_assignment({"pred_probs": probs, "pred_masks": masks})
    assert owner.tolist() == [[[1, 0]]]
    assert query_assignment(torch.zeros(1, 3, 4, 4)) is None  # a dense model: no proposals


def test_proposal_ids_take_the_nearest_window_centre() -> None:
    import torch

    from mrovseg.analysis.proposals import proposal_ids, segments_from_ids

    seen = []

    def forward(windows: torch.Tensor) -> dict:
        seen.append(windows.shape[0])
        n = windows.shape[0]
        masks = torch.zeros(n, 2, 4, 4)
        masks[:, 1, :, 2:] = 5.0  # query 1 owns the right half of every window, query 0 the left half
        logits = torch.zeros(n, 2, 3)
        return {"pred_logits": logits, "pred_masks": masks}

    image = torch.zeros(3, 4, 8)  # windows of 4 at stride 2: x = 0, 2, 4
    ids = proposal_ids(forward, image, window=4, overlap=0.5, window_batch=2)
    assert seen == [2, 1]
    # columns 0-1: window 0 (centre 1.5); 2: windows 0 (dist .5) and 1 (dist 1.5) → 0; 3: window 0 (1.5) vs
    # 1 (.5) → 1; 4: window 1 (.5) vs 2 (1.5) → 1; 5: window 1 (1.5) vs 2 (.5) → 2; 6-7: window 2.
    # id = window · 2 + query (query 1 on each window's right half: local x 2, 3)
    expected_row = [0, 0, 1, 2 + 0, 2 + 1, 4 + 0, 4 + 1, 4 + 1]
    assert ids.tolist() == [expected_row] * 4
    segments = segments_from_ids(ids.numpy())
    assert segments.count == 6 and segments.sizes.tolist() == [8, 4, 4, 4, 4, 8]
    assert proposal_ids(lambda w: torch.zeros(len(w), 3, 4, 4), image, 4) is None


def test_proposal_oracle_labels_each_proposal_by_its_majority() -> None:
    label = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 1, 1, 1]])
    proposals = np.array([[7, 7, 9, 9], [7, 3, 9, 9]])  # proposal 3 is one pixel of class 0
    bench = BenchmarkInfo("hand", ["c0", "c1"])
    analysis = BenchmarkAnalysis(bench)
    analysis.update(pred, label, proposals)
    # proposals 7 (0, 0, 0) → 0, 3 (0) → 0, 9 (1 ×4) → 1: every pixel right
    np.testing.assert_array_equal(analysis.oracle_proposals, [[4, 0], [0, 4]])
    assert analysis.proposal_segments == 3 and analysis.proposal_images == 1
    with pytest.raises(ValueError, match="proposal map"):
        analysis.update(pred, label, proposals[:1])


def test_analyze_a_mask_model_reports_its_proposals(tmp_path: Path, tmp_path_factory) -> None:
    from mrovseg.analyze import analyze
    from tests.helpers import OVERFIT_MODEL, tiny_trained_run

    run, _ = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    overrides = [
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        f"clip.pretrained={run / 'clip.pt'}",
        *OVERFIT_MODEL,
        "data.num_test=2",
    ]
    with composed("analyze", tmp_path, overrides, base=TINY_DATA + TINY_TRAINER) as cfg:
        analyze(cfg)
    report = (tmp_path / "analysis" / "toy" / "report.md").read_text()
    row = next(
        line for line in report.splitlines() if line.startswith("| model's proposals, ground-truth classes |")
    )
    assert 0.0 <= float(row.split(" | ")[1]) <= 100.0
    assert "proposals per image" in report and "The recognition gain below uses this row" in report
