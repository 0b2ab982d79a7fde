"""Result rows of the benchmark and their markdown tables.

``Row``: one line of the forward table (a model at a slice ratio, batch 1: parameters, FLOPs of the
full forward and of the bare CLIP trunk, latencies). ``ThroughputRow``: one line of the throughput
table (a model, mode, image size, batch and precision: latency, images/s, peak memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


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
    torch_version: str = torch.__version__


@dataclass
class ThroughputRow:
    """One line of the throughput table (a model, mode, image size and batch).

    Attributes:
        model: model label.
        mode: ``forward`` (batches of crops through ``model(images, text)``) or ``inference`` (one
            whole image through the sliding window).
        ratio: slice ratio p.
        width: image width (pixels; ``forward``: the padded crop).
        height: image height.
        window: sliding-window side (the train crop).
        windows: windows per image (1 in ``forward`` mode).
        batch: images per forward (``forward``) or windows per forward (``inference``).
        batch_limit: why a searched batch is the largest ('' for batch 1): ``cap N``, ``OOM at N``,
            ``RAM budget at N``, ``windows N``.
        precision: ``fp32`` or ``bf16 autocast``.
        device: the torch device.
        params_total_m: millions of parameters, all.
        params_no_text_m: millions of parameters without CLIP's text tower.
        gflops_per_image: GFLOPs per image (FlopCounterMode, fp32).
        latency_s: median seconds of one call (one batch, or one image in ``inference``).
        images_per_s: images per second at that latency.
        peak_mem_mib: peak memory during the timed runs (CUDA allocated / CPU RSS), MiB.
        peak_mem_delta_mib: its increase over the memory just before, MiB.
        mem_kind: what the memory columns measure.
        runs: every timed run, seconds.
    """

    model: str
    mode: str
    ratio: float
    width: int
    height: int
    window: int
    windows: int
    batch: int
    batch_limit: str
    precision: str
    device: str
    params_total_m: float
    params_no_text_m: float
    gflops_per_image: float
    latency_s: float | None = None
    images_per_s: float | None = None
    peak_mem_mib: float | None = None
    peak_mem_delta_mib: float | None = None
    mem_kind: str = ""
    runs: list[float] = field(default_factory=list)
    torch_version: str = torch.__version__


@dataclass
class Report:
    """Everything one run produced: the forward table, the throughput table and the metadata."""

    rows: list[Row]
    throughput: list[ThroughputRow]
    meta: dict[str, Any]


def fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_row(row: Row) -> str:
    """One line of the forward table (markdown)."""
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
        fmt(row.latency_s, 2),
        fmt(row.trunk_latency_s, 2),
        fmt(row.latency_ratio, 2),
        row.torch_version,
    ]
    return "| " + " | ".join(cells) + " |"


def markdown(header: str, lines: Sequence[str]) -> str:
    """A markdown table: the header, its rule line, then the rows."""
    rule = "|" + "---|" * header.count(" | ") + "---|"
    return "\n".join([header, rule, *lines])


def markdown_table(rows: Sequence[Row]) -> str:
    """The forward table (markdown)."""
    header = (
        "| model | p | input | CLIP views | trunk passes | params total (M) | params w/o text tower (M) "
        "| trainable (M) | GFLOPs | GMACs | CLIP trunk GFLOPs | latency full (s) | latency trunk (s) | full / trunk | torch |"
    )
    return markdown(header, [format_row(r) for r in rows])


def digits(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def format_throughput(row: ThroughputRow) -> str:
    """One line of the throughput table (markdown)."""
    batch = str(row.batch) + (f" (max; {row.batch_limit})" if row.batch_limit else "")
    cells = [
        row.model,
        row.mode,
        f"{row.width}×{row.height}",
        f"{row.window}²",
        str(row.windows),
        batch,
        row.precision,
        f"{row.params_total_m:.1f} / {row.params_no_text_m:.1f}",
        digits(row.gflops_per_image),
        digits(row.latency_s),
        digits(row.images_per_s),
        fmt(row.peak_mem_mib, 0),
        fmt(row.peak_mem_delta_mib, 0),
        row.torch_version,
    ]
    return "| " + " | ".join(cells) + " |"


def throughput_table(rows: Sequence[ThroughputRow]) -> str:
    """The throughput table (markdown)."""
    header = (
        "| model | mode | image (W×H) | window | windows | batch | precision | params total / w/o text (M) "
        "| GFLOPs / image | latency (s) | images/s | peak mem (MiB) | Δ mem (MiB) | torch |"
    )
    return markdown(header, [format_throughput(r) for r in rows])


def gpu_report_markdown(
    environment: dict[str, Any], records: Sequence[dict], numerics: Sequence[dict]
) -> str:
    """The GPU report as markdown: environment lines, the measurement table, numerics and SDPA kernels."""
    from mrovseg.benchmarking.environment import describe_kernels

    env = environment
    lines = [
        f"Device {env['device']} ({env['device_name']}), driver {env.get('driver')}, torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, open_clip {env['open_clip']}; {env['date']}; "
        f"commit {env['git_commit']}; budget {env['budget_s']:.0f} s, wall {env.get('wall_s', 0):.0f} s; "
        f"latency = median of {env['repeats']} after {env['warmup']} warm-up.",
        "",
    ]
    header = (
        "| model | section | case | precision | batch | image | latency or s/step | images/s "
        "| peak mem (MiB) | status | note |"
    )
    rows = []
    for r in records:
        cells = [
            r["model"],
            r["section"],
            r["case"],
            r["precision"],
            str(r["batch"] or "–"),
            r["image"] or "–",
        ]
        cells += [digits(r["latency_s"]), digits(r["images_per_s"]), fmt(r["peak_mem_mib"], 0)]
        cells += [r["status"], r["note"] or ""]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [markdown(header, rows), ""]
    for n in numerics:
        if n["status"] == "ok":
            lines.append(
                f"- numerics {n['model']}: bf16 vs fp32 max |Δ logit| {n['max_abs_logit_diff']:.4f} "
                f"(logits up to {n['logit_scale']:.1f}), argmax agreement {100 * n['argmax_agreement']:.2f} %"
            )
        else:
            lines.append(f"- numerics {n['model']}: {n['status']}")
    for model, per_precision in env.get("sdpa_kernels", {}).items():
        for precision, kernels in per_precision.items():
            lines.append(
                f"- SDPA {model} {precision}: trunk/adapter {describe_kernels(kernels['unmasked'])}; "
                f"biased classifier attention {describe_kernels(kernels['biased'])}"
            )
    for model, info in env.get("models", {}).items():
        lines.append(
            f"- {model}: input {info['input']}², {info['params_total_m']:.1f} M parameters "
            f"({info['params_trainable_m']:.1f} M trainable), {info['gflops_batch1']:.1f} GFLOPs "
            f"(batch 1, fp32, attention counted explicitly; torch {info['flops_torch']})"
        )
    return "\n".join(lines) + "\n"
