"""Measures a built model: the forward table (params, FLOPs, latency per slice ratio) and throughput.

``forward_rows``: for each slice ratio p, one forward at batch 1: FLOPs of the full forward and of
the bare CLIP trunk over the same views (``model.encode_views``), and, for the latency ratios, both
latencies timed alternately in the same run; each latency ratio also gives throughput rows: batch 1
and, with a batch search, the largest batch that fits. ``inference_rows``: whole images through the
shared sliding-window routine (``sliding_window`` over ``model.semantic_scores`` then
``upsample_argmax``), p = 0.5; "batch" is the window batch. Everything runs in eval mode under
``torch.inference_mode`` (and bf16 autocast when asked); FLOPs are always counted in fp32 on the CPU.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from mrovseg.benchmarking.build import (
    MODELS,
    PAPER_RATIO,
    Built,
    build,
    count_params,
    count_windows,
    describe_views,
    random_text,
    set_ratio,
)
from mrovseg.benchmarking.flops import count_flops
from mrovseg.benchmarking.memory import (
    MIB,
    BatchSearch,
    MemoryStat,
    PeakMemory,
    release_memory,
    search_max_batch,
)
from mrovseg.benchmarking.report import Row, ThroughputRow, format_row, format_throughput
from mrovseg.benchmarking.timing import precision_context, sync, time_pair, time_runs
from mrovseg.model.inference import sliding_window, upsample_argmax
from mrovseg.model.mrovseg.model import MROVSeg

#: Default largest batch per device type (CUDA: a safety net; the search stops at the first OOM).
DEFAULT_MAX_BATCH = {"cpu": 8, "cuda": 1024}


@dataclass
class Bench:
    """A built model and what every measurement of it shares."""

    built: Built
    model: MROVSeg
    side: int
    params: tuple[float, float, float]
    text: torch.Tensor
    device: torch.device
    args: argparse.Namespace

    @property
    def label(self) -> str:
        return self.built.label

    @property
    def precision(self) -> str:
        return "bf16 autocast" if self.args.bf16 else "fp32"

    @contextmanager
    def context(self) -> Iterator[None]:
        """``inference_mode`` and the precision's autocast."""
        with torch.inference_mode(), precision_context(self.args.bf16, self.device):
            yield

    def row(self, **kwargs: Any) -> ThroughputRow:
        return ThroughputRow(
            model=self.label,
            precision=self.precision,
            device=str(self.device),
            params_total_m=self.params[0],
            params_no_text_m=self.params[1],
            **kwargs,
        )

    def cap(self) -> int:
        return self.args.max_batch or DEFAULT_MAX_BATCH.get(self.device.type, 8)


def measure(bench: Bench, fn: Callable[[], Any]) -> tuple[list[float], MemoryStat]:
    """Timed runs of ``fn`` (after warm-up) and their peak memory."""
    mem = PeakMemory(bench.device)
    with bench.context(), mem:
        runs = time_runs(fn, bench.args.repeats, bench.args.warmup, bench.device)
    assert mem.stat is not None
    return runs, mem.stat


def run_once(bench: Bench, fn: Callable[[], Any]) -> MemoryStat:
    """One untimed call of ``fn`` and its peak memory (a batch-search trial)."""
    mem = PeakMemory(bench.device)
    with bench.context(), mem:
        fn()
        sync(bench.device)
    assert mem.stat is not None
    return mem.stat


def fill(row: ThroughputRow, runs: list[float], mem: MemoryStat, images: int) -> ThroughputRow:
    """Sets a row's latency, images/s and memory from timed runs of ``images`` images each."""
    row.runs = runs
    row.latency_s = statistics.median(runs)
    row.images_per_s = images / row.latency_s
    row.peak_mem_mib = mem.peak / MIB
    row.peak_mem_delta_mib = mem.delta / MIB
    row.mem_kind = mem.kind
    return row


def forward_rows(bench: Bench) -> tuple[list[Row], list[ThroughputRow]]:
    """The forward table's rows (every ``--ratios``) and throughput rows (every ``--latency-ratios``)."""
    label, model, side, params, args, device = (
        bench.label,
        bench.model,
        bench.side,
        bench.params,
        bench.args,
        bench.device,
    )
    g = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, side, side, generator=g)
    text = bench.text

    def full() -> Any:
        return model(images, text)

    def trunk() -> Any:
        return model.encode_views(images)

    rows: list[Row] = []
    throughput: list[ThroughputRow] = []
    for ratio in args.ratios:
        set_ratio(model, ratio)
        model.to("cpu")
        images, text = images.cpu(), text.cpu()
        flops, trunk_flops = count_flops(full), count_flops(trunk)
        model.backbone.num_trunk_calls = 0
        with torch.no_grad():
            trunk()
        row = Row(
            model=label,
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
            mem = PeakMemory(device)
            with bench.context(), mem:
                runs_full, runs_trunk = time_pair(full, trunk, args.repeats, args.warmup, device)
            assert mem.stat is not None
            row.latency_runs, row.trunk_latency_runs = runs_full, runs_trunk
            row.latency_s = statistics.median(runs_full)
            row.trunk_latency_s = statistics.median(runs_trunk)
            row.latency_ratio = row.latency_s / row.trunk_latency_s
            common = {"mode": "forward", "ratio": ratio, "width": side, "height": side, "window": side}
            common |= {"windows": 1, "gflops_per_image": flops / 1e9}
            throughput.append(fill(bench.row(batch=1, batch_limit="", **common), runs_full, mem.stat, 1))
            if args.batch_search:
                throughput.extend(forward_max_batch(bench, mem.stat, common))
        print(f"[{label}] p={ratio}: {format_row(row)}", file=sys.stderr)
        rows.append(row)
    return rows, throughput


def forward_max_batch(bench: Bench, batch1: MemoryStat, common: dict[str, Any]) -> list[ThroughputRow]:
    """Throughput of the largest batch of crops that fits (nothing if that is batch 1)."""
    model, text, side = bench.model, bench.text.to(bench.device), bench.side

    def call(batch: int) -> Callable[[], Any]:
        images = torch.rand(batch, 3, side, side, device=bench.device)
        return lambda: model(images, text)

    search = search_max_batch(
        lambda b: run_once(bench, call(b)), bench.cap(), bench.device, batch1, bench.args.ram_fraction
    )
    print(f"[{bench.label}] forward batch search: {describe_search(search)}", file=sys.stderr)
    if search.max_batch == 1:
        return []
    runs, mem = measure(bench, call(search.max_batch))
    row = bench.row(batch=search.max_batch, batch_limit=search.limit, **common)
    return [fill(row, runs, mem, search.max_batch)]


def describe_search(search: BatchSearch) -> str:
    tried = ", ".join(
        f"{b}: {'OOM' if s is None else f'{s.peak / MIB:.0f} MiB'}" for b, s in search.trials.items()
    )
    return f"max {search.max_batch} ({search.limit}); tried {tried}"


def inference_rows(bench: Bench) -> list[ThroughputRow]:
    """Whole-image sliding-window inference at every ``--sizes`` (p = 0.5): batch 1 (+ the largest)."""
    model, side, device, args = bench.model, bench.side, bench.device, bench.args
    set_ratio(model, PAPER_RATIO)
    model.to(device)
    text = bench.text.to(device)

    def score_fn(windows: torch.Tensor) -> torch.Tensor:
        return model.semantic_scores(windows, text)

    window_flops = count_flops(lambda: score_fn(torch.rand(1, 3, side, side, device=device)))
    print(f"[{bench.label}] one {side}² window: {window_flops / 1e9:.1f} GFLOPs", file=sys.stderr)
    rows: list[ThroughputRow] = []
    for width, height in args.sizes or MODELS[bench.built.name].sizes:
        windows = count_windows(width, height, side, args.window_overlap)
        g = torch.Generator().manual_seed(1)
        image = torch.rand(3, height, width, generator=g).to(device)

        def call(window_batch: int, image: torch.Tensor = image) -> Callable[[], Any]:
            def infer() -> torch.Tensor:
                scores = sliding_window(score_fn, image, side, args.window_overlap, window_batch)
                return upsample_argmax(scores, tuple(image.shape[-2:]))

            return infer

        common = {"mode": "inference", "ratio": PAPER_RATIO, "width": width, "height": height}
        common |= {"window": side, "windows": windows, "gflops_per_image": windows * window_flops / 1e9}
        row = bench.row(batch=1, batch_limit="", **common)
        if args.no_latency:
            rows.append(row)
            continue
        runs, mem = measure(bench, call(1))
        rows.append(fill(row, runs, mem, 1))
        print(f"[{bench.label}] {format_throughput(rows[-1])}", file=sys.stderr)
        if not args.batch_search:
            continue
        cap = min(bench.cap(), windows)
        search = search_max_batch(
            lambda b, call=call: run_once(bench, call(b)), cap, device, mem, args.ram_fraction
        )
        if search.limit == f"cap {windows}" and windows < bench.cap():
            search.limit = f"windows {windows}"
        print(
            f"[{bench.label}] {width}×{height} window-batch search: {describe_search(search)}",
            file=sys.stderr,
        )
        if search.max_batch > 1:
            runs, mem = measure(bench, call(search.max_batch))
            row = bench.row(batch=search.max_batch, batch_limit=search.limit, **common)
            rows.append(fill(row, runs, mem, 1))
            print(f"[{bench.label}] {format_throughput(rows[-1])}", file=sys.stderr)
    return rows


def benchmark_model(name: str, args: argparse.Namespace) -> tuple[list[Row], list[ThroughputRow]]:
    """All rows of one model (built once; the slice ratio is switched in place)."""
    device = torch.device(args.device)
    t0 = time.perf_counter()
    built = build(name, args.size)
    model, side = built.model, built.side
    print(f"[{built.label}] built in {time.perf_counter() - t0:.1f} s; input {side}²", file=sys.stderr)
    text = random_text(model, args.classes)
    bench = Bench(built, model, side, count_params(model), text, device, args)
    rows: list[Row] = []
    throughput: list[ThroughputRow] = []
    if args.mode in ("forward", "all"):
        rows, throughput = forward_rows(bench)
    if args.mode in ("inference", "all"):
        throughput += inference_rows(bench)
    model.to("cpu")
    del bench, model
    release_memory(device)
    return rows, throughput
