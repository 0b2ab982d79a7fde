#!/usr/bin/env python
"""Parameters, FLOPs, latency, throughput and memory of MROVSeg (ViT-B/16, ViT-L/14).

Everything runs with random CLIP weights (``pretrained=None``: no network) and a random ``--classes``
text embedding (default 171, COCO-Stuff's vocabulary), in eval mode under ``torch.inference_mode``.
Two modes (``--mode all`` runs both on one model build):

``forward`` (the default; the first table) — for each model and slice ratio p, one forward, batch 1:

* parameters: total (CLIP image + text towers + heads), total without CLIP's text tower (which never
  runs per step: text embeddings are cached), and trainable (everything but CLIP);
* FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and attention; it
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

Paper defaults (MROVSeg §4.1, DESIGN.md): 640² input, CLIP views of 320², adapter width 768, 6 blocks,
12 heads, 100 queries. ViT-B/16: fusion layers {stem, 3, 6, 9, 12}, last 3 blocks classify. ViT-L/14:
fusion {stem, 6, 12, 18}, last 6 blocks classify. 640 is not a multiple of ViT-L's patch 14, so the
input side is padded up to a multiple of 2 × patch (644² for ViT-L/14, global view 322²), which keeps
p = 0.5 slices the size of the global view (one batched trunk pass), as 640/320 does for ViT-B/16;
its sliding window is 644 (as ``conf/experiment/vitl14.yaml``). ``--size`` changes the train crop
(e.g. 1024 for the high-resolution Cityscapes variant, window 1024). ``toy`` is the tiny test CLIP
(``tests/conftest.py``: patch 4, 64² crop, 32² views) with a tiny adapter, for tests and smoke runs.

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
import ctypes
import datetime as dt
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mrovseg.constants import ASSETS_DIR, REPO_ROOT
from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.inference import sliding_window, upsample_argmax
from mrovseg.model.mrovseg import MROVSeg
from mrovseg.model.slicer import Slicer

try:  # optional: RSS and available RAM; /proc is read otherwise
    import psutil
except ImportError:  # pragma: no cover - psutil comes with wandb
    psutil = None

NUM_CLASSES = 171
#: Slice ratio of the paper's model (used by ``inference`` mode and the throughput rows' default).
PAPER_RATIO = 0.5
#: Default ``--max-batch`` per device type (CUDA: a safety net; the search stops at the first OOM).
DEFAULT_MAX_BATCH = {"cpu": 8, "cuda": 1024}
MIB = 2**20


@dataclass(frozen=True)
class ModelSpec:
    """One paper configuration.

    Attributes:
        label: name printed in the table.
        clip_name: open_clip model name.
        num_cls_blocks: last CLIP blocks used by the classifier.
        fusion_layers: CLIP layers fused by the adapter (0 = stem).
        adapter: remaining ``MultiResAdapter`` arguments.
        crop: train crop side (padded to a multiple of 2 × patch), also the sliding window.
        sizes: default ``(width, height)`` images of ``inference`` mode.
        model_config: custom open_clip model-config JSON (the toy CLIP), else None.
        image_mean: CLIP input normalisation mean (None: OpenAI's).
        image_std: CLIP input normalisation std (None: OpenAI's).
    """

    label: str
    clip_name: str
    num_cls_blocks: int
    fusion_layers: tuple[int, ...]
    adapter: dict[str, Any] = field(
        default_factory=lambda: {"dim": 768, "depth": 6, "num_heads": 12, "num_queries": 100, "mask_dim": 256}
    )
    crop: int = 640
    sizes: tuple[tuple[int, int], ...] = ((640, 640), (2048, 1024))
    model_config: str | None = None
    image_mean: tuple[float, ...] | None = None
    image_std: tuple[float, ...] | None = None


SPECS: dict[str, ModelSpec] = {
    "vitb16": ModelSpec("ViT-B/16", "ViT-B-16", num_cls_blocks=3, fusion_layers=(0, 3, 6, 9, 12)),
    "vitl14": ModelSpec("ViT-L/14", "ViT-L-14", num_cls_blocks=6, fusion_layers=(0, 6, 12, 18)),
    # the tests' toy CLIP (tests/conftest.py) with their tiny adapter: the paper's set-up / 10 in pixels
    "toy": ModelSpec(
        "toy",
        "toy-vit-p4-32",
        num_cls_blocks=1,
        fusion_layers=(0, 1, 2, 3),
        adapter={"dim": 32, "depth": 2, "num_heads": 2, "num_queries": 5, "mask_dim": 16},
        crop=64,
        sizes=((64, 64), (128, 64)),
        model_config=str(ASSETS_DIR / "toy_clip" / "toy-vit-p4-32.json"),
        image_mean=(0.5, 0.5, 0.5),
        image_std=(0.25, 0.25, 0.25),
    ),
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


@dataclass
class Report:
    """Everything one run produced: the forward table, the throughput table and the metadata."""

    rows: list[Row]
    throughput: list[ThroughputRow]
    meta: dict[str, Any]


# ---------------------------------------------------------------------------------------------- model


def build(spec: ModelSpec, size: int) -> tuple[MROVSeg, int]:
    """The model (random CLIP weights, eval mode) and its padded input side (= the sliding window)."""
    backbone = CLIPBackbone(
        spec.clip_name,
        pretrained=None,
        model_config=spec.model_config,
        image_mean=spec.image_mean,
        image_std=spec.image_std,
    )
    side = math.ceil(size / (2 * backbone.patch_size)) * 2 * backbone.patch_size
    model = MROVSeg(
        backbone,
        slice_ratio=PAPER_RATIO,
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
    """The CLIP views of one ``side``² input, e.g. ``1×320² + 4×320²``."""
    layout = model.slicer.layout(side, side)
    view = f"1×{model.slicer.clip_size}²"
    if layout is None:
        return view
    sh, sw = layout.slice_pixels
    return f"{view} + {layout.num_slices}×{sh}²" if sh == sw else f"{view} + {layout.num_slices}×{sh}×{sw}"


def count_windows(width: int, height: int, window: int, overlap: float) -> int:
    """Windows ``sliding_window`` runs on a ``width × height`` image (counted by running it on zeros)."""
    seen = 0

    def score_fn(crops: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        seen += crops.shape[0]
        return crops.new_zeros(crops.shape[0], 1, 1, 1)

    sliding_window(score_fn, torch.zeros(3, height, width), window, overlap, window_batch=64)
    return seen


# ---------------------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call (CUDA work included: synchronised before and after)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def time_runs(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds per call of ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        _timed(fn, device)
    return [_timed(fn, device) for _ in range(repeats)]


def time_pair(
    full: Callable[[], Any], trunk: Callable[[], Any], repeats: int, warmup: int, device: torch.device
) -> tuple[list[float], list[float]]:
    """Seconds per call of two functions, alternated run by run so both see the same machine load."""
    for _ in range(warmup):
        _timed(full, device)
        _timed(trunk, device)
    runs_full, runs_trunk = [], []
    for _ in range(repeats):
        runs_full.append(_timed(full, device))
        runs_trunk.append(_timed(trunk, device))
    return runs_full, runs_trunk


def precision_context(bf16: bool, device: torch.device) -> Any:
    """bf16 autocast on the device, or nothing (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


# ---------------------------------------------------------------------------------------------- memory


def current_rss() -> int:
    """Resident set size of this process, bytes."""
    if psutil is not None:
        return psutil.Process().memory_info().rss
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_ram() -> int:
    """RAM available to new allocations without swapping (``MemAvailable``), bytes."""
    if psutil is not None:
        return psutil.virtual_memory().available
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("Cannot read MemAvailable from /proc/meminfo.")


def total_ram() -> int:
    """Physical RAM, bytes."""
    if psutil is not None:
        return psutil.virtual_memory().total
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def release_memory(device: torch.device) -> None:
    """Frees what can be freed: Python garbage, CUDA's cache, glibc's free heap pages."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    with suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


@dataclass
class MemoryStat:
    """Peak memory of one measurement, bytes: absolute and above the memory before it."""

    peak: int
    delta: int
    kind: str


class PeakMemory:
    """Context manager measuring the peak memory of what runs inside it (see the module docstring).

    CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats``. CPU: RSS sampled every
    ``interval`` seconds by a daemon thread (lower bound: short spikes may be missed).
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.stat: MemoryStat | None = None
        self._base = 0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, current_rss())

    def __enter__(self) -> PeakMemory:
        release_memory(self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._peak = current_rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            kind = "CUDA max_memory_allocated"
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            peak = max(self._peak, current_rss())
            kind = "CPU RSS (sampled every 2 ms)"
        self.stat = MemoryStat(peak=peak, delta=max(0, peak - self._base), kind=kind)


def is_oom(err: BaseException) -> bool:
    """Whether an exception is an out-of-memory failure (CUDA or a failed CPU allocation)."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


@dataclass
class BatchSearch:
    """Result of ``search_max_batch``: the largest batch that ran, why the search stopped, the trials."""

    max_batch: int
    limit: str
    trials: dict[int, MemoryStat | None] = field(default_factory=dict)


def candidate_batches(cap: int) -> Iterator[int]:
    """2, 4, 8, ... below ``cap``, then ``cap`` itself."""
    b = 2
    while b < cap:
        yield b
        b *= 2
    if cap >= 2:
        yield cap


def search_max_batch(
    try_batch: Callable[[int], MemoryStat],
    cap: int,
    device: torch.device,
    batch1: MemoryStat | None,
    ram_fraction: float = 0.75,
    available: Callable[[], int] = available_ram,
) -> BatchSearch:
    """The largest batch (doubling from 1, at most ``cap``) that runs without running out of memory.

    Args:
        try_batch: runs one call at a batch size and returns its memory; may raise an OOM error.
        cap: largest batch tried.
        device: CPU batches are checked against the RAM budget first; CUDA ones are just tried.
        batch1: memory of batch 1 (already measured), the base of the CPU prediction.
        ram_fraction: CPU budget, as a fraction of the available RAM at the time of the check.
        available: available RAM in bytes (injectable for tests).
    """
    search = BatchSearch(max_batch=1, limit=f"cap {cap}", trials={1: batch1})
    last = batch1
    for b in candidate_batches(cap):
        if device.type != "cuda" and last is not None:
            need = last.delta * b / search.max_batch
            budget = available() * ram_fraction
            if need > budget:
                search.limit = f"RAM budget at {b} ({need / MIB:.0f} MiB > {budget / MIB:.0f} MiB)"
                return search
        try:
            stat = try_batch(b)
        except (RuntimeError, MemoryError) as err:
            if not is_oom(err):
                raise
            oom = True
        else:
            oom = False
        if oom:  # outside the except block, so the traceback's tensors are gone
            release_memory(device)
            search.limit = f"OOM at {b}"
            search.trials[b] = None
            return search
        search.trials[b] = last = stat
        search.max_batch = b
    return search


# ---------------------------------------------------------------------------------------------- benchmarks


@dataclass
class Bench:
    """A built model and what every measurement of it shares."""

    spec: ModelSpec
    model: MROVSeg
    side: int
    params: tuple[float, float, float]
    text: torch.Tensor
    device: torch.device
    args: argparse.Namespace

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
            model=self.spec.label,
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
        _sync(bench.device)
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
    spec, model, side, params, args, device = (
        bench.spec,
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
        print(f"[{spec.label}] p={ratio}: {format_row(row)}", file=sys.stderr)
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
    print(f"[{bench.spec.label}] forward batch search: {_describe_search(search)}", file=sys.stderr)
    if search.max_batch == 1:
        return []
    runs, mem = measure(bench, call(search.max_batch))
    row = bench.row(batch=search.max_batch, batch_limit=search.limit, **common)
    return [fill(row, runs, mem, search.max_batch)]


def _describe_search(search: BatchSearch) -> str:
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
    print(f"[{bench.spec.label}] one {side}² window: {window_flops / 1e9:.1f} GFLOPs", file=sys.stderr)
    rows: list[ThroughputRow] = []
    for width, height in args.sizes or bench.spec.sizes:
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
        print(f"[{bench.spec.label}] {format_throughput(rows[-1])}", file=sys.stderr)
        if not args.batch_search:
            continue
        cap = min(bench.cap(), windows)
        search = search_max_batch(
            lambda b, call=call: run_once(bench, call(b)), cap, device, mem, args.ram_fraction
        )
        if search.limit == f"cap {windows}" and windows < bench.cap():
            search.limit = f"windows {windows}"
        print(
            f"[{bench.spec.label}] {width}×{height} window-batch search: {_describe_search(search)}",
            file=sys.stderr,
        )
        if search.max_batch > 1:
            runs, mem = measure(bench, call(search.max_batch))
            row = bench.row(batch=search.max_batch, batch_limit=search.limit, **common)
            rows.append(fill(row, runs, mem, 1))
            print(f"[{bench.spec.label}] {format_throughput(rows[-1])}", file=sys.stderr)
    return rows


def benchmark_model(spec: ModelSpec, args: argparse.Namespace) -> tuple[list[Row], list[ThroughputRow]]:
    """All rows of one model (built once; the slice ratio is switched in place)."""
    device = torch.device(args.device)
    t0 = time.perf_counter()
    model, side = build(spec, args.size or spec.crop)
    print(f"[{spec.label}] built in {time.perf_counter() - t0:.1f} s; input {side}²", file=sys.stderr)
    g = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(args.classes, model.backbone.embed_dim, generator=g), dim=-1)
    bench = Bench(spec, model, side, count_params(model), text, device, args)
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


# ---------------------------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int) -> str:
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
        _fmt(row.latency_s, 2),
        _fmt(row.trunk_latency_s, 2),
        _fmt(row.latency_ratio, 2),
    ]
    return "| " + " | ".join(cells) + " |"


def _markdown(header: str, lines: Sequence[str]) -> str:
    """A markdown table: the header, its rule line, then the rows."""
    rule = "|" + "---|" * header.count(" | ") + "---|"
    return "\n".join([header, rule, *lines])


def markdown_table(rows: Sequence[Row]) -> str:
    """The forward table (markdown)."""
    header = (
        "| model | p | input | CLIP views | trunk passes | params total (M) | params w/o text tower (M) "
        "| trainable (M) | GFLOPs | GMACs | CLIP trunk GFLOPs | latency full (s) | latency trunk (s) | full / trunk |"
    )
    return _markdown(header, [format_row(r) for r in rows])


def _digits(value: float | None) -> str:
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
        _digits(row.gflops_per_image),
        _digits(row.latency_s),
        _digits(row.images_per_s),
        _fmt(row.peak_mem_mib, 0),
        _fmt(row.peak_mem_delta_mib, 0),
    ]
    return "| " + " | ".join(cells) + " |"


def throughput_table(rows: Sequence[ThroughputRow]) -> str:
    """The throughput table (markdown)."""
    header = (
        "| model | mode | image (W×H) | window | windows | batch | precision | params total / w/o text (M) "
        "| GFLOPs / image | latency (s) | images/s | peak mem (MiB) | Δ mem (MiB) |"
    )
    return _markdown(header, [format_throughput(r) for r in rows])


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    """HEAD's short hash (``-dirty`` when tracked files differ from it), or None outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """Date, device, versions and settings of this run (the JSON metadata and the printed header)."""
    import open_clip

    device = torch.device(args.device)
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "mode": args.mode,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "ram_gib": round(total_ram() / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "bf16": args.bf16,
        "classes": args.classes,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        meta["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        meta["gpu_capability"] = f"{props.major}.{props.minor}"
    return meta


def header(meta: dict[str, Any]) -> str:
    """The printed header: date, device and versions."""
    gpu = f", {meta['gpu_memory_gib']} GiB, sm {meta['gpu_capability']}" if "gpu_memory_gib" in meta else ""
    return (
        f"# MROVSeg benchmark, {meta['date']}; device {meta['device']} ({meta['device_name']}{gpu}); "
        f"CPU {meta['cpu']} × {meta['cpu_count']}, {meta['threads']} torch threads, {meta['ram_gib']} GiB RAM, "
        f"load average {meta['load_average'][0]}\n"
        f"# torch {meta['torch']}, open_clip {meta['open_clip']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}, "
        f"Python {meta['python']}; {'bf16 autocast' if meta['bf16'] else 'fp32'}; commit {meta['git_commit']}"
    )


# ---------------------------------------------------------------------------------------------- CLI


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``x`` or ``×``) → ``(width, height)``."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 2048x1024, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(SPECS), default=["vitb16", "vitl14"])
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
    meta = environment(args)
    print(header(meta))
    start = time.perf_counter()
    rows: list[Row] = []
    throughput: list[ThroughputRow] = []
    for name in args.models:
        model_rows, model_throughput = benchmark_model(SPECS[name], args)
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
