"""``analysis/<benchmark>/report.md`` with its figures, from one benchmark's :class:`BenchmarkAnalysis`.

Sections: per-class IoU, the largest confusions and a confusion heat map, IoU by object size, and the
oracle breakdown (masks or recognition). The header names the model, checkpoint, benchmark, number of
images and the evaluation's mIoU (the same number as ``metrics.json``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mrovseg.analysis import figures, tables
from mrovseg.analysis.collect import BenchmarkAnalysis
from mrovseg.analysis.size import bin_labels

#: Per-class table: every class up to this many, else the best and worst half.
MAX_TABLE_ROWS = 40

#: Split scores of the header, as named there.
SPLIT_KEYS = {"base_mIoU": "base", "novel_mIoU": "novel", "hIoU": "hIoU"}


def _connected(connectivity: int) -> str:
    return f"{'an' if connectivity == 8 else 'a'} {connectivity}-connected"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows)]


def _header(
    analysis: BenchmarkAnalysis, entry: Mapping[str, Any], model: str, checkpoint: str | None
) -> list[str]:
    bench = analysis.benchmark
    k = len(bench.class_names)
    classes = f"{k} classes"
    if bench.seen_classes is not None:
        classes += f"; {len(bench.seen_classes)} seen in training (base), {k - len(bench.seen_classes)} novel"
    scores = f"**{_num(entry.get('mIoU'), 2)}**"
    ci = entry.get("mIoU_ci95")
    if ci is not None and all(v is not None and math.isfinite(v) for v in ci):
        scores += f" [{ci[0]:.2f}, {ci[1]:.2f}] (95 % bootstrap interval over images)"
    extras = [f"{text} {_num(entry.get(key), 2)}" for key, text in SPLIT_KEYS.items() if key in entry]
    if extras:
        scores += "; " + ", ".join(extras)
    return [
        f"# Error analysis: {bench.name}",
        "",
        *_table(
            ["", ""],
            [
                ["model", f"`{model}`"],
                ["checkpoint", f"`{checkpoint}`" if checkpoint else "none (nothing trained)"],
                ["benchmark", f"{bench.name} ({classes})"],
                ["images", str(analysis.num_images)],
                ["mIoU", scores],
                ["pixel accuracy", _num(entry.get("pixel_acc"), 2)],
            ],
        ),
        "",
        "IoU in percent, by detectron2 v0.6's rule (a class counts where it occurs in the ground truth or "
        "the prediction), as `metrics.json`.",
    ]


def _per_class(analysis: BenchmarkAnalysis, out_dir: Path) -> list[str]:
    bench = analysis.benchmark
    iou = tables.class_iou(analysis.confmat)
    figures.per_class_iou_figure(iou, bench.class_names, bench.seen_classes, out_dir / "per_class_iou.png")
    present = [c for c in sorted(range(len(iou)), key=lambda c: -iou[c]) if not math.isnan(iou[c])]
    ranked = list(enumerate(present, start=1))
    if len(ranked) > MAX_TABLE_ROWS:
        ranked = ranked[: MAX_TABLE_ROWS // 2] + ranked[-MAX_TABLE_ROWS // 2 :]
    gt_pixels, pred_pixels = analysis.confmat.sum(1), analysis.confmat.sum(0)
    total = max(int(gt_pixels.sum()), 1)
    seen = set(bench.seen_classes) if bench.seen_classes is not None else None
    header = [
        "rank",
        "class",
        *(["split"] if seen is not None else []),
        "IoU",
        "% of GT pixels",
        "% of predicted pixels",
    ]
    rows = [
        [str(rank), bench.class_names[c], *([("base" if c in seen else "novel")] if seen is not None else []),
         _num(float(iou[c])), _num(gt_pixels[c] / total * 100, 2), _num(pred_pixels[c] / total * 100, 2)]
        for rank, c in ranked
    ]  # fmt: skip
    absent = len(iou) - len(present)
    notes = " (base and novel classes coloured apart)" if seen is not None else ""
    notes += "." + (
        f" {absent} classes occur in neither the ground truth nor the prediction and are left out."
        if absent
        else ""
    )
    if len(ranked) < len(present):
        notes += f" The table shows the best and worst {MAX_TABLE_ROWS // 2}."
    return [
        "## 1. Per-class IoU",
        "",
        f"IoU of each class over all images, best first{notes}",
        "",
        "![per-class IoU](per_class_iou.png)",
        "",
        *_table(header, rows),
    ]


def _confusions(analysis: BenchmarkAnalysis, out_dir: Path) -> list[str]:
    names = analysis.benchmark.class_names
    options = analysis.options
    pairs = tables.top_confusions(analysis.confmat, options.top_confusions)
    rows = [[f"{names[p.target]} → {names[p.pred]}", _num(p.share), str(p.pixels)] for p in pairs]
    classes, shares = tables.frequent_block(analysis.confmat, options.heatmap_classes)
    figures.confusion_figure(classes, shares, names, out_dir / "confusion.png")
    return [
        "## 2. Confusions",
        "",
        f"Where the pixels of a ground-truth class go: the {len(pairs)} largest confusions between two classes, "
        "ranked by the share of the ground-truth class's pixels predicted as the other class.",
        "",
        *_table(["ground truth → predicted", "% of the ground-truth class's pixels", "pixels"], rows),
        "",
        f"Heat map of the {len(classes)} classes with the most ground-truth pixels; each row is normalised "
        'over all of that class\'s pixels (column "other": predicted as a class outside the map).',
        "",
        "![confusion heat map](confusion.png)",
    ]


def _sizes(analysis: BenchmarkAnalysis, out_dir: Path) -> list[str]:
    options = analysis.options
    labels = bin_labels(options.size_bins)
    rows = tables.size_rows(analysis.size_confmat, analysis.size_objects)
    figures.size_figure(labels, rows, out_dir / "size.png")
    edges = ", ".join(f"{e * 100:g} %" for e in options.size_bins)
    table_rows = [
        [label, str(r["objects"]), str(r["pixels"]), _num(r["pixel_acc"]), _num(r["mIoU"])]
        for label, r in zip(labels, rows)
    ]
    return [
        "## 3. IoU by object size",
        "",
        "How well objects of each size are labelled: per size bin, the share of the objects' pixels "
        "labelled correctly and the mIoU inside the region of those objects (confusion restricted to their "
        "pixels, averaged over the classes present there).",
        "",
        f"An object is {_connected(options.connectivity)} component of one ground-truth class in one image; "
        f"its size is its pixel count over the image's area, binned at {edges} "
        f"({analysis.gt_segments} objects, {analysis.gt_segments / max(analysis.num_images, 1):.1f} per image).",
        "",
        *_table(
            ["object size (of image area)", "objects", "pixels", "pixels correct (%)", "mIoU"], table_rows
        ),
        "",
        "![IoU by object size](size.png)",
    ]


def _oracles(analysis: BenchmarkAnalysis, out_dir: Path) -> list[str]:
    seen = analysis.benchmark.seen_classes
    model = tables.mean_iou(analysis.confmat, seen)
    gt_masks = tables.mean_iou(analysis.oracle_gt_masks, seen)
    model_masks = tables.mean_iou(analysis.oracle_model_masks, seen)
    named = [
        ("model", model),
        ("ground-truth masks, model's classes", gt_masks),
        ("model's segments, ground-truth classes", model_masks),
    ]
    bars = [
        ("model", model),
        ("GT masks,\nmodel's classes", gt_masks),
        ("model's segments,\nGT classes", model_masks),
    ]
    proposals = None
    if analysis.proposal_images:
        proposals = tables.mean_iou(analysis.oracle_proposals, seen)
        named.append(("model's proposals, ground-truth classes", proposals))
        bars.append(("model's proposals,\nGT classes", proposals))
    figures.oracle_figure(bars, out_dir / "oracle.png")
    keys = list(model)
    rows = [[name, *(_num(r[k]) for k in keys)] for name, r in named]
    recognised = proposals if proposals is not None else model_masks  # the rule for mask models
    mask_gain, class_gain = gt_masks["mIoU"] - model["mIoU"], recognised["mIoU"] - model["mIoU"]
    loser = "masks lose more" if mask_gain > class_gain else "recognition loses more"
    if math.isclose(mask_gain, class_gain, abs_tol=0.05):
        loser = "masks and recognition lose about as much"
    images = max(analysis.num_images, 1)
    per_image, gt_per_image = analysis.pred_segments / images, analysis.gt_segments / images
    connected = _connected(analysis.options.connectivity)
    caveat = []
    if analysis.pred_segments > 2 * analysis.gt_segments:
        caveat = [
            f"The model's map has {analysis.pred_segments / max(analysis.gt_segments, 1):.1f}× as many segments as "
            "the ground truth: each fragment takes its own majority class, which flatters that oracle.",
            "",
        ]
    proposal_lines = []
    if proposals is not None:
        per_image_p = analysis.proposal_segments / max(analysis.proposal_images, 1)
        proposal_lines = [
            "- **Model's proposals, ground-truth classes** (mask-based models): every query proposal is labelled "
            "with the ground-truth class of most of its pixels. A pixel belongs to the query with the largest "
            "class confidence × mask probability in the window whose centre is nearest "
            f"(`docs/error-analysis.md`; {per_image_p:.1f} proposals per image). The recognition gain below uses "
            "this row.",
        ]
    return [
        "## 4. Oracle breakdown: masks or recognition?",
        "",
        "mIoU when one half of the prediction is replaced by the truth: the model's classes on ground-truth "
        "masks, and ground-truth classes on the model's masks.",
        "",
        *_table(["", *(figures.SCORE_NAMES[k] for k in keys)], rows),
        "",
        f"- **Ground-truth masks, model's classes**: every ground-truth segment ({connected} "
        "component of one class in one image) is labelled with the class the model predicts on most of its pixels.",
        f"- **Model's segments, ground-truth classes**: every segment of the model ({connected} component of its "
        "predicted label map) is labelled with the ground-truth class of most of its non-ignored pixels "
        f"({per_image:.1f} segments per image against {gt_per_image:.1f} ground-truth segments).",
        *proposal_lines,
        "- Ties go to the smaller class index.",
        "",
        f"Perfect masks would add {mask_gain:+.1f} mIoU, perfect recognition {class_gain:+.1f}: **{loser}**.",
        "",
        *caveat,
        "![oracle breakdown](oracle.png)",
    ]


def write_report(
    analysis: BenchmarkAnalysis, entry: Mapping[str, Any], out_dir: Path, model: str, checkpoint: str | None
) -> Path:
    """Writes ``out_dir/report.md`` and its PNGs for one benchmark; returns the report's path.

    Args:
        analysis: the benchmark's collected statistics.
        entry: the benchmark's entry of the evaluation results (``mIoU``, ``pixel_acc``, ...).
        out_dir: the benchmark's analysis folder.
        model: the model's name for the header.
        checkpoint: the evaluated checkpoint (None: an untrained model).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [
        _header(analysis, entry, model, checkpoint),
        _per_class(analysis, out_dir),
        _confusions(analysis, out_dir),
        _sizes(analysis, out_dir),
        _oracles(analysis, out_dir),
    ]
    path = out_dir / "report.md"
    path.write_text("\n\n".join("\n".join(lines) for lines in sections) + "\n")
    return path


def write_reports(
    analyses: Mapping[str, BenchmarkAnalysis],
    results: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    model: str,
    checkpoint: str | None,
) -> list[Path]:
    """One report per benchmark with images, under ``out_dir/<benchmark>/``; returns their paths."""
    paths = []
    for name, analysis in analyses.items():
        if analysis.num_images:
            paths.append(write_report(analysis, results.get(name, {}), out_dir / name, model, checkpoint))
    return paths
