#!/usr/bin/env python
"""Parameters, FLOPs and latency of MROVSeg (ViT-B/16, ViT-L/14) at the paper's settings.

For each model and slice ratio p, with random CLIP weights (``pretrained=None``: no network) and a
random 171-class text embedding (COCO-Stuff's vocabulary size), one forward in eval mode, batch 1:

* parameters: total (CLIP image + text towers + heads), total without CLIP's text tower (which never
  runs per step: text embeddings are cached), and trainable (everything but CLIP);
* FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and attention; it
  counts 2 FLOPs per multiply-add, so MACs = FLOPs / 2) of the full forward and of the bare CLIP
  trunk over the same views (``model.encode_views``: global view + slices, no heads);
* latency (median of ``--repeats`` runs after ``--warmup``, ``torch.inference_mode``) of the full
  forward and of the bare trunk, timed alternately in the same run, and their ratio.

Paper defaults (MROVSeg §4.1, DESIGN.md): 640² input, CLIP views of 320², adapter width 768, 6 blocks,
12 heads, 100 queries. ViT-B/16: fusion layers {stem, 3, 6, 9, 12}, last 3 blocks classify. ViT-L/14:
fusion {stem, 6, 12, 18}, last 6 blocks classify. 640 is not a multiple of ViT-L's patch 14, so the
input side is padded up to a multiple of 2 × patch (644² for ViT-L/14, global view 322²), which keeps
p = 0.5 slices the size of the global view (one batched trunk pass), as 640/320 does for ViT-B/16.

The paper reports 162.1 M parameters and 640.4 GFLOPs (Table 5, ViT-B/16) and 142.8 GFLOPs at
p = 0.5 (Table 3) without saying how FLOPs are counted; compare with both columns.

Usage:
    python scripts/benchmark.py                                   # ViT-B/16 + ViT-L/14, p ∈ {0, 0.5, 1}
    python scripts/benchmark.py --models vitb16 --ratios 0.5 --latency-ratios 0.5 --repeats 5
    python scripts/benchmark.py --device cuda --bf16 --latency-ratios 0 0.5 1 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.mrovseg import MROVSeg
from mrovseg.model.slicer import Slicer

NUM_CLASSES = 171


@dataclass(frozen=True)
class ModelSpec:
    """One paper configuration.

    Attributes:
        label: name printed in the table.
        clip_name: open_clip model name.
        num_cls_blocks: last CLIP blocks used by the classifier.
        fusion_layers: CLIP layers fused by the adapter (0 = stem).
        adapter: remaining ``MultiResAdapter`` arguments.
    """

    label: str
    clip_name: str
    num_cls_blocks: int
    fusion_layers: tuple[int, ...]
    adapter: dict[str, Any] = field(
        default_factory=lambda: {"dim": 768, "depth": 6, "num_heads": 12, "num_queries": 100, "mask_dim": 256}
    )


SPECS: dict[str, ModelSpec] = {
    "vitb16": ModelSpec("ViT-B/16", "ViT-B-16", num_cls_blocks=3, fusion_layers=(0, 3, 6, 9, 12)),
    "vitl14": ModelSpec("ViT-L/14", "ViT-L-14", num_cls_blocks=6, fusion_layers=(0, 6, 12, 18)),
}


@dataclass
class Row:
    """One line of the results table (FLOPs in GFLOPs, latencies in seconds)."""

    model: str
    ratio: float
    input_side: int
    clip_size: int
    views: str
    trunk_calls: int
    params_total_m: float
    params_no_text_m: float
    params_trainable_m: float
    gflops: float
    gmacs: float
    trunk_gflops: float
    latency_s: float | None = None
    trunk_latency_s: float | None = None
    latency_ratio: float | None = None
    latency_runs: list[float] = field(default_factory=list)
    trunk_latency_runs: list[float] = field(default_factory=list)


def build(spec: ModelSpec, size: int) -> tuple[MROVSeg, int]:
    """The model (random CLIP weights, eval mode) and its padded input side."""
    backbone = CLIPBackbone(spec.clip_name, pretrained=None)
    side = math.ceil(size / (2 * backbone.patch_size)) * 2 * backbone.patch_size
    model = MROVSeg(
        backbone,
        slice_ratio=0.5,
        clip_size=side // 2,
        num_cls_blocks=spec.num_cls_blocks,
        adapter={**spec.adapter, "fusion_layers": list(spec.fusion_layers)},
    )
    return model.eval(), side


def set_ratio(model: MROVSeg, ratio: float) -> None:
    """Switches the slice ratio in place (the weights do not depend on p)."""
    model.slicer = Slicer(ratio, model.slicer.clip_size, model.slicer.patch)


def count_params(model: MROVSeg) -> tuple[float, float, float]:
    """Millions of parameters: total, total without CLIP's text tower, trainable."""
    total = sum(p.numel() for p in model.parameters())
    visual = {id(p) for p in model.backbone.visual.parameters()}
    text = sum(p.numel() for p in model.backbone.clip.parameters() if id(p) not in visual)
    trainable = sum(p.numel() for p in model.trainable_parameters())
    return total / 1e6, (total - text) / 1e6, trainable / 1e6


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (2 per multiply-add) of one call, as ``FlopCounterMode`` counts them."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return counter.get_total_flops()


def describe_views(model: MROVSeg, side: int) -> str:
    layout = model.slicer.layout(side, side)
    view = f"1×{model.slicer.clip_size}²"
    if layout is None:
        return view
    sh, sw = layout.slice_pixels
    return f"{view} + {layout.num_slices}×{sh}²" if sh == sw else f"{view} + {layout.num_slices}×{sh}×{sw}"


def time_pair(
    full: Callable[[], Any], trunk: Callable[[], Any], repeats: int, warmup: int, device: torch.device
) -> tuple[list[float], list[float]]:
    """Seconds per call of two functions, alternated run by run so both see the same machine load."""

    def once(fn: Callable[[], Any]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for _ in range(warmup):
        once(full)
        once(trunk)
    runs_full, runs_trunk = [], []
    for _ in range(repeats):
        runs_full.append(once(full))
        runs_trunk.append(once(trunk))
    return runs_full, runs_trunk


def benchmark_model(spec: ModelSpec, args: argparse.Namespace) -> list[Row]:
    """All rows of one model (built once; the slice ratio is switched in place)."""
    device = torch.device(args.device)
    t0 = time.perf_counter()
    model, side = build(spec, args.size)
    print(f"[{spec.label}] built in {time.perf_counter() - t0:.1f} s; input {side}²", file=sys.stderr)
    params = count_params(model)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, side, side, generator=g)
    text = F.normalize(torch.randn(NUM_CLASSES, model.backbone.embed_dim, generator=g), dim=-1)

    def full() -> Any:
        return model(images, text)

    def trunk() -> Any:
        return model.encode_views(images)

    rows: list[Row] = []
    for ratio in args.ratios:
        set_ratio(model, ratio)
        model.to("cpu")
        images, text = images.cpu(), text.cpu()
        flops, trunk_flops = count_flops(full), count_flops(trunk)
        model.backbone.num_trunk_calls = 0
        with torch.no_grad():
            trunk()
        row = Row(
            model=spec.label,
            ratio=ratio,
            input_side=side,
            clip_size=model.slicer.clip_size,
            views=describe_views(model, side),
            trunk_calls=model.backbone.num_trunk_calls,
            params_total_m=params[0],
            params_no_text_m=params[1],
            params_trainable_m=params[2],
            gflops=flops / 1e9,
            gmacs=flops / 2e9,
            trunk_gflops=trunk_flops / 1e9,
        )
        if not args.no_latency and any(math.isclose(ratio, r) for r in args.latency_ratios):
            model.to(device)
            images, text = images.to(device), text.to(device)
            autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else nullcontext()
            with torch.inference_mode(), autocast:
                runs_full, runs_trunk = time_pair(full, trunk, args.repeats, args.warmup, device)
            row.latency_runs, row.trunk_latency_runs = runs_full, runs_trunk
            row.latency_s = statistics.median(runs_full)
            row.trunk_latency_s = statistics.median(runs_trunk)
            row.latency_ratio = row.latency_s / row.trunk_latency_s
        print(f"[{spec.label}] p={ratio}: {format_row(row)}", file=sys.stderr)
        rows.append(row)
    return rows


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_row(row: Row) -> str:
    cells = [
        row.model,
        f"{row.ratio:g}",
        f"{row.input_side}²",
        row.views,
        str(row.trunk_calls),
        f"{row.params_total_m:.1f}",
        f"{row.params_no_text_m:.1f}",
        f"{row.params_trainable_m:.1f}",
        f"{row.gflops:.1f}",
        f"{row.gmacs:.1f}",
        f"{row.trunk_gflops:.1f}",
        _fmt(row.latency_s, 2),
        _fmt(row.trunk_latency_s, 2),
        _fmt(row.latency_ratio, 2),
    ]
    return "| " + " | ".join(cells) + " |"


def markdown_table(rows: Sequence[Row]) -> str:
    header = (
        "| model | p | input | CLIP views | trunk passes | params total (M) | params w/o text tower (M) "
        "| trainable (M) | GFLOPs | GMACs | CLIP trunk GFLOPs | latency full (s) | latency trunk (s) | full / trunk |"
    )
    rule = "|" + "---|" * header.count(" | ") + "---|"
    return "\n".join([header, rule, *(format_row(r) for r in rows)])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(SPECS), default=["vitb16", "vitl14"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.0, 0.5, 1.0], help="slice ratios p")
    parser.add_argument(
        "--latency-ratios",
        nargs="+",
        type=float,
        default=[0.5],
        help="ratios (among --ratios) whose latency is measured (default 0.5: CPU runs are slow)",
    )
    parser.add_argument("--no-latency", action="store_true", help="parameters and FLOPs only")
    parser.add_argument("--size", type=int, default=640, help="input side (padded to a multiple of 2×patch)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (FLOPs are counted on the CPU)")
    parser.add_argument("--bf16", action="store_true", help="time under bfloat16 autocast")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and settings here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = [row for name in args.models for row in benchmark_model(SPECS[name], args)]
    wall = time.perf_counter() - start
    device = torch.device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(markdown_table(rows))
    print(
        f"\nbatch 1, eval mode, random weights, {NUM_CLASSES} classes; device {args.device} ({where}), "
        f"{torch.get_num_threads()} threads, {'bf16 autocast' if args.bf16 else 'fp32'}, torch {torch.__version__}; "
        f"latency = median of {args.repeats} after {args.warmup} warm-up; wall time {wall:.0f} s."
    )
    if args.json is not None:
        meta = {
            "argv": sys.argv,
            "device": args.device,
            "device_name": where,
            "threads": torch.get_num_threads(),
            "bf16": args.bf16,
            "torch": torch.__version__,
            "wall_s": wall,
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    return rows


if __name__ == "__main__":
    main()
