#!/usr/bin/env python
"""Parameters, FLOPs, latency, throughput and memory of MROVSeg (ViT-B/16, ViT-L/14).

Everything runs with random CLIP weights (``pretrained=None``: no network) and a random ``--classes``
text embedding (default 171, COCO-Stuff's vocabulary), in eval mode under ``torch.inference_mode``.
Two modes (``--mode all`` runs both on one model build):

``forward`` (the default; the first table) — for each model and slice ratio p, one forward, batch 1:

* parameters: total (CLIP image + text towers + heads), total without CLIP's text tower (which never
  runs per step: text embeddings are cached), and trainable (everything but CLIP);
* FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` with explicit attention (matmuls, convolutions and attention; it
  counts 2 FLOPs per multiply-add, so MACs = FLOPs / 2) of the full forward and of the bare CLIP
  trunk over the same views (``model.encode_views``: global view + slices, no heads);
* latency (median of ``--repeats`` runs after ``--warmup``) of the full forward and of the bare
  trunk, timed alternately in the same run, and their ratio (for the ``--latency-ratios``).

Each latency ratio also gives rows of the second table (throughput): batch 1 (the same timed runs,
with their peak memory) and, with ``--batch-search``, the largest batch that fits (images per forward).

``inference`` — whole images through the shared sliding-window routine, as evaluation and
``predict`` run them (``mrovseg.model.inference.sliding_window`` over ``model.semantic_scores``,
window = the train crop, overlap ``--window-overlap``, then ``upsample_argmax``), p = 0.5, at each
``--sizes`` WIDTHxHEIGHT (default 640x640 and 2048x1024; the image is not resized first, so a
2048×1024 Cityscapes frame is covered by 2 × 5 = 10 windows of 640²). Latency is per image; "batch"
is the window batch (windows per forward, the ``window_batch`` of eval/predict): 1, and with
``--batch-search`` the largest that fits, at most the number of windows. GFLOPs per image = windows ×
the FLOPs of ``semantic_scores`` on one window (the score accumulation is not counted).

Throughput rows report the median latency of one call, images/s (batch / latency for ``forward``,
1 / latency for ``inference``) and peak memory:

* CUDA: ``torch.cuda.max_memory_allocated``, reset before each measurement: the absolute peak
  (weights and inputs included) and its increase over what was allocated before the measurement.
* CPU: the process's resident set size (RSS) sampled every 2 ms by a background thread during the
  measurement (psutil, else ``/proc/self/statm``): the sampled peak and its increase over the RSS just
  before (after ``gc.collect()`` and glibc's ``malloc_trim(0)``, so that memory freed by an earlier
  measurement does not hide this one's). Sampling can miss a spike shorter than 2 ms, so the figures
  are lower bounds. ``ru_maxrss`` (monotone) is not used per measurement; the peak RSS of the whole
  run is recorded in the JSON metadata.

Largest batch (``--batch-search``): batch sizes double from 1 up to ``--max-batch`` (tried last when
not a power of two). On CUDA a batch that raises ``torch.cuda.OutOfMemoryError`` ends the search (the
cache is emptied; default cap 1024, only a safety net). On the CPU (default cap 8) a batch is tried
only if its predicted memory — the previous batch's RSS increase scaled by the batch ratio, which
overestimates since the fixed part scales too — fits in ``--ram-fraction`` (default 0.75) of the
currently available RAM (``MemAvailable``), so the search never pushes the machine into swap (or,
without swap, the OOM killer); an allocation failure also ends it.

``--bf16`` times under ``torch.autocast(dtype=torch.bfloat16)`` on the device (CUDA, or the CPU,
where autocast supports bf16 too; FLOPs are always counted in fp32). The printed header and the JSON
metadata record the date, the device (GPU or CPU name), torch / open_clip / CUDA / cuDNN versions,
threads, RAM and the load average.

Models are composed from the real configs (``mrovseg/conf/experiment/{vitb16,vitl14,toy}.yaml``,
``mrovseg.benchmarking.build``) with ``clip.pretrained=null``: ViT-B/16 at 640² (views 320²), ViT-L/14 at
644² (views 322², the nearest multiple of 2 × patch 14), ``toy`` the default CPU experiment (64², views
32²). ``--size`` changes the train crop = sliding window (padded to a multiple of 2 × patch; e.g. 1024
for the high-resolution Cityscapes variant). FLOPs count attention explicitly, the same under every
torch release (``mrovseg.benchmarking.flops``); every table row carries the torch version.

The code lives in ``mrovseg.benchmarking`` (build, flops, timing, memory, measure, report,
environment); this script is the command line. ``scripts/gpu_report.py`` is the one-command GPU report.

The paper reports 162.1 M parameters and 640.4 GFLOPs (Table 5, ViT-B/16; 10.5 FPS on an RTX 3090)
and 142.8 GFLOPs at p = 0.5 (Table 3) without saying how FLOPs are counted; compare with both columns.

Usage:
    python scripts/benchmark.py                                   # ViT-B/16 + ViT-L/14, p ∈ {0, 0.5, 1}
    python scripts/benchmark.py --models vitb16 --ratios 0.5 --latency-ratios 0.5 --repeats 5
    python scripts/benchmark.py --mode inference --models vitb16 --sizes 640x640 2048x1024
    python scripts/benchmark.py --mode all --device cuda --bf16 --batch-search --json bench.json
    python scripts/benchmark.py --models toy --mode all --batch-search --repeats 2   # seconds
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from mrovseg.benchmarking.build import MODELS, count_windows
from mrovseg.benchmarking.environment import environment, header
from mrovseg.benchmarking.measure import DEFAULT_MAX_BATCH, benchmark_model
from mrovseg.benchmarking.memory import MIB, MemoryStat, PeakMemory, search_max_batch
from mrovseg.benchmarking.report import Row, ThroughputRow, markdown_table, throughput_table

__all__ = [
    "MIB",
    "MemoryStat",
    "PeakMemory",
    "count_windows",
    "main",
    "markdown_table",
    "parse_size",
    "search_max_batch",
    "throughput_table",
]

NUM_CLASSES = 171


@dataclass
class Report:
    """Everything one run produced: the forward table, the throughput table and the metadata."""

    rows: list[Row]
    throughput: list[ThroughputRow]
    meta: dict[str, Any]


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``x`` or ``×``) → ``(width, height)``."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 2048x1024, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["vitb16", "vitl14"])
    parser.add_argument(
        "--mode",
        choices=["forward", "inference", "all"],
        default="forward",
        help="forward: params/FLOPs/latency per slice ratio (+ throughput); inference: whole images "
        "through the sliding window; all: both",
    )
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.0, 0.5, 1.0], help="slice ratios p")
    parser.add_argument(
        "--latency-ratios",
        nargs="+",
        type=float,
        default=[0.5],
        help="ratios (among --ratios) whose latency is measured (default 0.5: CPU runs are slow)",
    )
    parser.add_argument("--no-latency", action="store_true", help="parameters and FLOPs only")
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="train crop side = sliding window (padded to a multiple of 2×patch; default 640, toy 64)",
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=parse_size,
        default=None,
        help="inference image sizes WIDTHxHEIGHT (default 640x640 2048x1024; toy 64x64 128x64)",
    )
    parser.add_argument("--window-overlap", type=float, default=1 / 3, help="sliding-window overlap")
    parser.add_argument("--classes", type=int, default=NUM_CLASSES, help="vocabulary size K")
    parser.add_argument(
        "--batch-search",
        action="store_true",
        help="also measure the largest batch that fits (doubling; CUDA: until OOM; CPU: RAM budget)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help=f"largest batch tried (default {DEFAULT_MAX_BATCH['cpu']} on CPU, {DEFAULT_MAX_BATCH['cuda']} on CUDA)",
    )
    parser.add_argument(
        "--ram-fraction",
        type=float,
        default=0.75,
        help="CPU batch search: predicted memory must fit in this fraction of the available RAM",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument(
        "--device", default="cpu", help="cpu | cuda | cuda:N (forward FLOPs are counted on the CPU)"
    )
    parser.add_argument("--bf16", action="store_true", help="time under bfloat16 autocast")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and settings here")
    args = parser.parse_args(argv)
    if args.max_batch is not None and args.max_batch < 1:
        parser.error("--max-batch must be at least 1")
    if not 0 < args.ram_fraction <= 1:
        parser.error("--ram-fraction must be in (0, 1]")
    if not 0 <= args.window_overlap < 1:
        parser.error("--window-overlap must be in [0, 1)")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here")
    if args.bf16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        parser.error(f"--bf16: {torch.cuda.get_device_name(device)} does not support bfloat16")
    return args


def run(args: argparse.Namespace) -> Report:
    """Benchmarks every ``--models`` as ``args`` say; prints the tables and writes ``--json``."""
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = {k: getattr(args, k) for k in ("mode", "bf16", "classes", "repeats", "warmup")}
    meta = environment(args.device, **settings)
    print(header(meta))
    start = time.perf_counter()
    rows: list[Row] = []
    throughput: list[ThroughputRow] = []
    for name in args.models:
        model_rows, model_throughput = benchmark_model(name, args)
        rows += model_rows
        throughput += model_throughput
    wall = time.perf_counter() - start
    meta["wall_s"] = wall
    meta["peak_rss_whole_run_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if rows:
        print(markdown_table(rows))
        print(
            f"\nbatch 1, eval mode, random weights, {args.classes} classes; device {args.device} "
            f"({meta['device_name']}), {torch.get_num_threads()} threads, "
            f"{'bf16 autocast' if args.bf16 else 'fp32'}, torch {torch.__version__}; "
            f"latency = median of {args.repeats} after {args.warmup} warm-up; wall time {wall:.0f} s."
        )
    if throughput:
        print("\n" + throughput_table(throughput))
        kind = throughput[0].mem_kind or "not measured"
        print(
            f"\nlatency = median of {args.repeats} after {args.warmup} warm-up, per batch (forward) or per "
            f"image (inference; batch = windows per forward); memory: {kind}, Δ = above the memory before "
            f"the measurement; whole-run peak RSS {meta['peak_rss_whole_run_mib']:.0f} MiB; wall time {wall:.0f} s."
        )
    report = Report(rows=rows, throughput=throughput, meta=meta)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "meta": meta,
            "rows": [asdict(r) for r in rows],
            "throughput": [asdict(r) for r in throughput],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return report


def main(argv: Sequence[str] | None = None) -> Report:
    """Entry point: parses ``argv`` and runs."""
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
