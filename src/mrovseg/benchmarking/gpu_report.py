"""The one-command GPU report: what researchers compare, for ViT-B/16 and ViT-L/14 at 640², fp32 and bf16.

Sections (each measurement is one record; ``status`` says ``ok``, ``oom``, ``skipped (budget)`` or
``error: ...``, so a report with a skipped or failed part still has every field):

* ``inference``: latency and images/s at batch 1 and at the largest batch that fits (one doubling
  search, ``mrovseg.benchmarking.memory.search_max_batch``), peak memory; and one large image
  (2048×1024) through the sliding window (``semantic_scores`` per window, window batch = the module's);
* ``training``: seconds per optimizer step and peak memory at per-GPU batch 1, 8 and 16
  (``mrovseg.benchmarking.train_step``: full criterion, deep supervision, AdamW);
* ``numerics``: bf16 autocast against fp32 on the same batch: max |Δ| of the class logits and the
  fraction of pixels whose argmax label agrees;
* ``environment``: device, driver, torch/CUDA/cuDNN, and the SDPA kernel of the trunk/adapter
  (unmasked) and of the classifier's biased attention, per precision (``environment.sdpa_kernels``).

A time budget keeps the whole report under ``budget_s`` (default 420 s, for the 8 minutes the
report may take on one GPU): every model and section gets a share, a measurement that would start
after its share (or the total) is recorded as skipped. ``tiny=True`` (tests, ``--device cpu
--tiny``) runs the toy experiment with a tiny adapter, one repeat, small images and training batches
1 and 2, in seconds of CPU time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mrovseg.benchmarking.build import Built, build, count_params, count_windows, random_text
from mrovseg.benchmarking.environment import environment, sdpa_kernels
from mrovseg.benchmarking.flops import count_flops
from mrovseg.benchmarking.memory import MIB, PeakMemory, is_oom, release_memory, search_max_batch
from mrovseg.benchmarking.timing import precision_context, sync, time_runs
from mrovseg.benchmarking.train_step import make_train_step
from mrovseg.model.inference import sliding_window, upsample_argmax

PRECISIONS = ("fp32", "bf16")
#: ``--tiny``: the toy experiment with the tests' tiny adapter and loss (``tests/helpers.py``'s TINY_MODEL).
TINY_OVERRIDES = (
    "model.adapter.dim=32",
    "model.adapter.depth=2",
    "model.adapter.num_heads=2",
    "model.adapter.num_queries=8",
    "model.adapter.mask_dim=16",
    "criterion.num_points=256",
    "criterion.matcher.num_points=256",
)
TRAIN_BATCHES = (1, 8, 16)
#: Shares of a model's budget per section.
SHARES = {"inference": 0.45, "training": 0.45, "numerics": 0.1}
#: Every measurement record has these keys (None where not applicable).
RECORD_KEYS = (
    "model",
    "section",
    "case",
    "precision",
    "batch",
    "image",
    "latency_s",
    "images_per_s",
    "peak_mem_mib",
    "note",
    "status",
)


@dataclass
class Options:
    """What to measure and how long it may take."""

    device: str = "cuda"
    models: Sequence[str] = ("vitb16", "vitl14")
    tiny: bool = False
    budget_s: float = 420.0
    repeats: int = 3
    warmup: int = 1
    classes: int = 171
    max_batch: int = 1024
    large_image: tuple[int, int] = (2048, 1024)
    train_batches: tuple[int, ...] = TRAIN_BATCHES
    overrides: Sequence[str] = ()
    seed: int = 0

    @classmethod
    def tiny_cpu(cls, **kw: Any) -> Options:
        """The CPU test set-up: toy model, one repeat, small images and batches."""
        base = {"device": "cpu", "models": ("toy",), "tiny": True, "budget_s": 600.0, "repeats": 1}
        base |= {
            "warmup": 0,
            "classes": 8,
            "max_batch": 2,
            "large_image": (128, 64),
            "train_batches": (1, 2),
        }
        base |= {"overrides": TINY_OVERRIDES}
        return cls(**(base | kw))


@dataclass
class Budget:
    """A deadline (monotonic seconds) for a section, inside the run's overall deadline."""

    end: float
    total_end: float

    def left(self) -> bool:
        now = time.monotonic()
        return now < self.end and now < self.total_end


@dataclass
class Report:
    """The report: environment, measurement records and numerics."""

    environment: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    numerics: list[dict[str, Any]] = field(default_factory=list)


def record(**fields: Any) -> dict[str, Any]:
    """A measurement record with every ``RECORD_KEYS`` key."""
    unknown = set(fields) - set(RECORD_KEYS)
    if unknown:
        raise KeyError(f"Unknown record fields {sorted(unknown)}; expected {RECORD_KEYS}.")
    return {key: fields.get(key) for key in RECORD_KEYS}


def attempt(device: torch.device, budget: Budget, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs one measurement: its fields, or a status for a skip (budget), an OOM or another error."""
    if not budget.left():
        return {"status": "skipped (budget)"}
    try:
        out = fn()
    except (RuntimeError, MemoryError) as err:
        status = "oom" if is_oom(err) else f"error: {type(err).__name__}: {str(err)[:200]}"
    else:
        return {"status": "ok", **out}
    release_memory(device)  # outside the except block: the traceback's tensors are gone
    return {"status": status}


def timed_with_memory(fn: Callable[[], Any], device: torch.device, opts: Options) -> tuple[float, float]:
    """Median seconds of ``opts.repeats`` calls after warm-up, and their peak memory (MiB)."""
    mem = PeakMemory(device)
    with mem:
        runs = time_runs(fn, opts.repeats, opts.warmup, device)
    assert mem.stat is not None
    return statistics.median(runs), mem.stat.peak / MIB


def inference_section(built: Built, precision: str, opts: Options, budget: Budget) -> list[dict[str, Any]]:
    """Batch 1, the largest batch, and the large image through the sliding window."""
    device, model, side = torch.device(opts.device), built.model.eval(), built.side
    text = random_text(model, opts.classes).to(device)
    bf16 = precision == "bf16"
    base = {"model": built.label, "section": "inference", "precision": precision, "image": f"{side}×{side}"}

    def forward(batch: int) -> Callable[[], Any]:
        images = torch.rand(batch, 3, side, side, device=device)

        def call() -> Any:
            with torch.inference_mode(), precision_context(bf16, device):
                return model.semantic_scores(images, text)

        return call

    def at(batch: int) -> dict[str, Any]:
        latency, peak = timed_with_memory(forward(batch), device, opts)
        return {"latency_s": latency, "images_per_s": batch / latency, "peak_mem_mib": peak}

    rows = [record(**base, case="batch 1", batch=1, **attempt(device, budget, lambda: at(1)))]

    def trial(batch: int) -> Any:
        mem = PeakMemory(device)
        with mem:
            forward(batch)()
            sync(device)
        return mem.stat

    def largest() -> dict[str, Any]:
        search = search_max_batch(trial, opts.max_batch, device, None, keep_going=budget.left)
        return {"batch": search.max_batch, "note": f"largest batch ({search.limit})", **at(search.max_batch)}

    rows.append(record(**base, case="max batch", **attempt(device, budget, largest)))

    width, height = opts.large_image
    windows = count_windows(width, height, side, float(built.cfg.module.window_overlap))
    window_batch = int(built.cfg.module.window_batch)
    image = torch.rand(3, height, width, device=device)

    def large() -> dict[str, Any]:
        def call() -> Any:
            with torch.inference_mode(), precision_context(bf16, device):
                scores = sliding_window(
                    lambda w: model.semantic_scores(w, text),
                    image,
                    side,
                    built.cfg.module.window_overlap,
                    window_batch,
                )
                return upsample_argmax(scores, (height, width))

        latency, peak = timed_with_memory(call, device, opts)
        return {"latency_s": latency, "images_per_s": 1 / latency, "peak_mem_mib": peak}

    note = f"sliding window {side}², {windows} windows, {window_batch} per forward"
    case = {"case": "sliding window", "image": f"{width}×{height}", "batch": 1, "note": note}
    rows.append(record(**(base | case), **attempt(device, budget, large)))
    return rows


def training_section(built: Built, precision: str, opts: Options, budget: Budget) -> list[dict[str, Any]]:
    """Seconds per optimizer step and peak memory at each per-GPU batch."""
    device = torch.device(opts.device)
    rows = []
    for batch in opts.train_batches:

        def run(batch: int = batch) -> dict[str, Any]:
            step = make_train_step(built, batch, device, opts.classes, precision == "bf16", opts.seed)
            latency, peak = timed_with_memory(step.step, device, opts)
            return {"latency_s": latency, "images_per_s": batch / latency, "peak_mem_mib": peak}

        base = {"model": built.label, "section": "training", "precision": precision, "batch": batch}
        note = "s/step: full criterion, deep supervision, AdamW"
        rows.append(
            record(
                **base,
                case=f"batch {batch}",
                image=f"{built.side}²",
                note=note,
                **attempt(device, budget, run),
            )
        )
        built.model.eval()
        release_memory(device)
    return rows


def numerics_section(built: Built, opts: Options, budget: Budget) -> dict[str, Any]:
    """bf16 autocast against fp32 on one batch of 2: max |Δ| of the class logits, argmax agreement."""
    device, model = torch.device(opts.device), built.model.eval()
    text = random_text(model, opts.classes).to(device)
    images = torch.rand(2, 3, built.side, built.side, generator=torch.Generator().manual_seed(1)).to(device)

    def run() -> dict[str, Any]:
        out = {}
        for precision in PRECISIONS:
            with torch.inference_mode(), precision_context(precision == "bf16", device):
                result = model(images, text)
                labels = model.semantic_scores(images, text).argmax(dim=1)
            out[precision] = (result["pred_logits"].float(), labels)
        (l32, a32), (l16, a16) = out["fp32"], out["bf16"]
        return {
            "max_abs_logit_diff": float((l16 - l32).abs().max()),
            "logit_scale": float(l32.abs().max()),
            "argmax_agreement": float((a16 == a32).float().mean()),
        }

    return {"model": built.label, **attempt(device, budget, run)}


def describe_model(built: Built, opts: Options) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameters and FLOPs (CPU, fp32, batch 1) and the SDPA kernels per precision on the device."""
    model, side, device = built.model, built.side, torch.device(opts.device)
    x, text = torch.rand(1, 3, side, side), random_text(model, opts.classes)
    total, _, trainable = count_params(model)
    flops = count_flops(lambda: model.cpu()(x, text))
    info = {"experiment": built.name, "input": side, "params_total_m": total, "params_trainable_m": trainable}
    info |= {"gflops_batch1": flops / 1e9, "flops_torch": torch.__version__}
    model.to(device)
    x, text = x.to(device), text.to(device)
    kernels = {}
    for precision in PRECISIONS:
        with precision_context(precision == "bf16", device):
            kernels[precision] = sdpa_kernels(lambda: model(x, text))
    return info, kernels


def run_report(opts: Options) -> Report:
    """Runs every section of every model within ``opts.budget_s`` (unused time rolls over)."""
    start = time.monotonic()
    total_end = start + opts.budget_s
    meta = environment(opts.device, budget_s=opts.budget_s, tiny=opts.tiny, classes=opts.classes)
    meta |= {"repeats": opts.repeats, "warmup": opts.warmup, "sdpa_kernels": {}, "models": {}}
    report = Report(environment=meta)
    device = torch.device(opts.device)
    for i, name in enumerate(opts.models):
        model_end = time.monotonic() + (total_end - time.monotonic()) / (len(opts.models) - i)
        built = build(name, overrides=opts.overrides)
        meta["models"][built.label], meta["sdpa_kernels"][built.label] = describe_model(built, opts)
        tasks = [(s, p) for s in ("inference", "training") for p in PRECISIONS] + [("numerics", "")]
        weights = [SHARES[s] / (len(PRECISIONS) if p else 1) for s, p in tasks]
        for j, (section, precision) in enumerate(tasks):
            now = time.monotonic()
            end = now + max(0.0, model_end - now) * weights[j] / sum(weights[j:])
            budget = Budget(end=end, total_end=total_end)
            if section == "numerics":
                report.numerics.append(numerics_section(built, opts, budget))
            elif section == "inference":
                report.records += inference_section(built, precision, opts, budget)
            else:
                report.records += training_section(built, precision, opts, budget)
        built.model.cpu()
        del built
        release_memory(device)
    meta["wall_s"] = time.monotonic() - start
    return report
