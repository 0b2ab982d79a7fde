"""CPU inference precision: ViT-B/16 640² forward in fp32, bf16 and int8, and the matmul floor, one process.

    python scripts/bench_cpu_precision.py --json outputs/bench_precision.json     # or: make bench-precision

Builds the paper's ViT-B/16 model (``experiment=vitb16``, p = 0.5, random CLIP weights: offline) and
times ``MROVSeg.semantic_scores`` on one 640² image with ``--classes`` random text embeddings:

* ``fp32`` — the model as built;
* ``bf16`` — :func:`mrovseg.serving.precision.prepare_model` (frozen CLIP weights in bf16) under
  :func:`~mrovseg.serving.precision.precision_context` (bf16 autocast): what ``precision=bf16`` runs;
* ``int8`` — dynamic int8 quantization of the frozen CLIP's ``nn.Linear`` layers (weights quantized once):
  torchao's ``Int8DynamicActivationInt8WeightConfig`` when torchao is importable, else torch's
  ``torch.ao.quantization.quantize_dynamic`` (``--int8`` chooses); not offered as a ``precision`` (see
  BENCHMARKS.md, "CPU inference precision").

The three run alternately, round by round, after one warm-up each, so they see the same machine load;
each time is the median of ``--repeats`` rounds (wall seconds; ``--clock cpu``: the process's CPU
seconds, the steadier figure on a shared machine with ``--threads 1``). In the same rounds a 2048²
matrix multiply is timed in fp32 and bf16; the *floor* of a precision is the forward's FLOPs (counted
once, attention included, :func:`mrovseg.benchmarking.flops.count_flops`) at that matmul rate.
Agreement is the share of pixels whose argmax class equals fp32's. Writes ``{"fp32_s", "bf16_s",
"int8_s", "fp32_floor_s", "bf16_floor_s", "bf16_agreement", "int8_agreement", "torch", "cpu_flags"}``
and prints a summary (int8 backend, threads, clock, load average) on stderr.

``--kernels`` adds ``bf16_kernels_gflops``: the bf16 rate of the forward's kernels on their own shapes
(fused attention over 5 × 12 heads × 401 tokens and 1 × 12 × 1,700, the trunk's and the adapter's; the
MLP's linear layers over 2,005 tokens), median of 5 calls — what bounds the forward against the floor.
``--compile frozen`` is what ``compile=true`` runs (:mod:`mrovseg.serving.compile`: the whole forward with
Inductor's freezing). ``--parts`` adds ``bf16_parts_s``: the CPU seconds of the bf16 forward spent in the frozen CLIP trunk, the
adapter and the rest (decoder, classifier, restore), median over the rounds. ``--compile blocks|forward``
adds a fourth model, the bf16 one with ``torch.compile`` (Inductor, ``dynamic=False``) of the trunk's
residual block (``CLIPBackbone.block_forward``) or of the whole ``forward`` (without freezing), timed in the same rounds:
``bf16_compiled_s``, ``bf16_compiled_agreement`` and ``compile_first_s`` (its first call, compilation
included). Measured on the dev box: BENCHMARKS.md, "CPU inference precision".

``--text ade847`` measures the text tower instead (a separate JSON): a benchmark vocabulary × the ViLD
templates through ``CLIPBackbone.encode_vocabulary`` (random ViT-B/16 text tower, disk cache off) in fp32,
then in bf16 as ``precision=bf16`` runs it, in CPU seconds (``time.process_time``) and wall seconds, and
the cosine of each class's bf16 embedding to its fp32 one. ``--text-fraction`` keeps every n-th class
(times are then scaled to the whole vocabulary by the prompt count).

``--demo CKPT`` times the browser demo's work per photo instead (a separate JSON): the demo's own
``build_from_config`` at ``precision=fp32`` and ``precision=bf16`` (two sessions, one process), then
``DemoSession.segment`` of a 640×480 toy-world photo with the ``toy`` vocabulary — once each (the first
answer, text encoding included unless cached), then ``--repeats`` rounds alternating (text cached) —
in wall and CPU seconds, and the share of pixels whose labels agree. No server, no Gradio round trip.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

#: ``/proc/cpuinfo`` flags reported (the ones bf16 and int8 speed depend on).
REPORTED_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def quantize_int8(model: torch.nn.Module, backend: str = "auto") -> str:
    """Dynamic int8 quantization of ``model.backbone.clip``'s ``nn.Linear`` layers, in place; returns the
    backend used (``torchao`` or ``torch.ao``)."""
    clip = model.backbone.clip
    if backend in ("auto", "torchao"):
        try:
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

            quantize_(clip, Int8DynamicActivationInt8WeightConfig())
            return "torchao"
        except ImportError:
            if backend == "torchao":
                raise
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(clip, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return "torch.ao"


def text_benchmark(vocabulary: str, fraction: float) -> dict[str, Any]:
    """fp32 vs bf16 encoding of a vocabulary's prompts by a random ViT-B/16 text tower (see the docstring)."""
    from types import SimpleNamespace

    from mrovseg.data.vocabularies import get_templates, get_vocabulary
    from mrovseg.model.clip_backbone import CLIPBackbone
    from mrovseg.model.text_encoder import vocabulary_prompts
    from mrovseg.serving.precision import precision_context, prepare_model

    os.environ["MROVSEG_CACHE"] = "off"
    names, templates = list(get_vocabulary(vocabulary)), list(get_templates("vild"))
    step = max(1, round(1 / fraction))
    subset = names[::step]
    torch.manual_seed(0)
    fp32 = CLIPBackbone("ViT-B-16", pretrained=None)
    bf16 = prepare_model(SimpleNamespace(backbone=copy.deepcopy(fp32)), "bf16").backbone
    scale = len(vocabulary_prompts(names, templates)[0]) / len(vocabulary_prompts(subset, templates)[0])
    out: dict[str, Any] = {"vocabulary": vocabulary, "classes": len(subset), "classes_total": len(names)}
    out["prompts"] = len(vocabulary_prompts(subset, templates)[0])
    emb = {}
    for name, backbone in (("fp32", fp32), ("bf16", bf16)):
        start, cpu = time.perf_counter(), time.process_time()
        with precision_context(name, "cpu"):
            emb[name] = backbone.encode_vocabulary(subset, templates)
        out[f"{name}_cpu_s"] = round((time.process_time() - cpu) * scale, 1)
        out[f"{name}_s"] = round((time.perf_counter() - start) * scale, 1)
    cosine = (emb["fp32"] * emb["bf16"]).sum(dim=-1)
    out.update(cosine_min=round(float(cosine.min()), 6), cosine_mean=round(float(cosine.mean()), 6))
    out.update(scaled_to_all=scale != 1, threads=torch.get_num_threads(), torch=torch.__version__)
    return out


def demo_benchmark(ckpt: str, repeats: int) -> dict[str, Any]:
    """Seconds per 640×480 photo of the demo's session at fp32 and bf16 (see the module docstring)."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from mrovseg.config import CONF_DIR
    from mrovseg.demo.app import build_from_config
    from mrovseg.demo.session import benchmark_names, example_images

    out = Path(tempfile.mkdtemp(prefix="bench-precision-demo-"))
    photo = example_images(out / "photo", count=1, size=(480, 640))[0]
    vocabulary = benchmark_names("toy")
    sessions = {}
    for precision in ("fp32", "bf16"):
        overrides = [f"ckpt_path={ckpt}", f"precision={precision}", "demo.num_examples=1"]
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("demo", [*overrides, f"output_dir={out / precision}"])
        sessions[precision] = build_from_config(cfg)[1]
    result: dict[str, Any] = {}
    labels = {}
    for name, session in sessions.items():  # the first answer
        start, cpu = time.perf_counter(), time.process_time()
        labels[name] = session.segment(photo, vocabulary, 0.5).result.labels
        result[f"{name}_first_s"] = round(time.perf_counter() - start, 2)
        result[f"{name}_first_cpu_s"] = round(time.process_time() - cpu, 2)
    runs: dict[str, list[float]] = {f"{n}_{k}": [] for n in sessions for k in ("s", "cpu_s")}
    for _ in range(repeats):
        for name, session in sessions.items():
            start, cpu = time.perf_counter(), time.process_time()
            session.segment(photo, vocabulary, 0.5)
            runs[f"{name}_s"].append(time.perf_counter() - start)
            runs[f"{name}_cpu_s"].append(time.process_time() - cpu)
    result.update({k: round(statistics.median(v), 2) for k, v in runs.items()})
    result["label_agreement"] = round(float((labels["fp32"] == labels["bf16"]).mean()), 6)
    result.update(photo="640x480", threads=torch.get_num_threads(), torch=torch.__version__)
    return result


def kernel_rates(clock: Callable[[], float]) -> dict[str, float]:
    """bf16 GFLOP/s of fused attention and of the MLP's linear layers on ViT-B/16 640² shapes (see above)."""
    import torch.nn.functional as F

    def rate(flops: float, fn: Callable[[], Any]) -> float:
        fn()
        return round(flops / statistics.median(timed(fn, clock) for _ in range(5)) / 1e9)

    out = {}
    with torch.inference_mode():
        for name, (n, t) in {"attention_5x401": (5, 401), "attention_1x1700": (1, 1700)}.items():
            q, k, v = (torch.randn(n, 12, t, 64).bfloat16() for _ in range(3))
            out[name] = rate(
                4 * n * 12 * t * t * 64, lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v)
            )
        x = torch.randn(2005, 768).bfloat16()
        w, b = torch.randn(3072, 768).bfloat16(), torch.randn(3072).bfloat16()
        out["linear_2005x768x3072"] = rate(2 * 2005 * 768 * 3072, lambda: F.linear(x, w, b))
    return out


def compiled_copy(model: torch.nn.Module, what: str) -> torch.nn.Module:
    """A copy of ``model`` with ``torch.compile`` of its trunk's residual block or of its whole forward."""
    model = copy.deepcopy(model)
    if what == "blocks":
        model.backbone.block_forward = torch.compile(model.backbone.block_forward, dynamic=False)
    elif what == "frozen":
        from mrovseg.serving.compile import compile_for_inference

        compile_for_inference(model)
    else:
        model.forward = torch.compile(model.forward, dynamic=False)
    return model


class PartTimer:
    """CPU seconds (``time.process_time``) a model's forward spends in its trunk, adapter and the rest.

    Wraps ``backbone.forward_views`` and ``adapter.forward`` on the instance; between :meth:`start` and
    :meth:`stop` one forward is one round; :meth:`medians` gives the median of each part over the rounds.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.rounds: list[dict[str, float]] = []
        self._round: dict[str, float] | None = None
        self._begin = 0.0
        for owner, name, part in (
            (model.backbone, "forward_views", "clip_trunk"),
            (model.adapter, "forward", "adapter"),
        ):
            self._wrap(owner, name, part)

    def _wrap(self, owner: Any, name: str, part: str) -> None:
        inner = getattr(owner, name)

        def timed_part(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                if self._round is not None:
                    self._round[part] = self._round.get(part, 0.0) + time.process_time() - start

        setattr(owner, name, timed_part)

    def start(self) -> None:
        self._round, self._begin = {}, time.process_time()

    def stop(self) -> None:
        assert self._round is not None
        total = time.process_time() - self._begin
        self._round["rest"] = total - sum(self._round.values())
        self._round["total"] = total
        self.rounds.append(self._round)
        self._round = None

    def medians(self) -> dict[str, float]:
        return {k: round(statistics.median(r[k] for r in self.rounds), 3) for k in self.rounds[0]}


def timed(fn: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, required=True, help="where the JSON result goes")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (>= 3)")
    parser.add_argument("--classes", type=int, default=150, help="vocabulary size K")
    parser.add_argument("--size", type=int, default=640, help="image side (the sliding window)")
    parser.add_argument(
        "--model", default="vitb16", help="a model of mrovseg.benchmarking.build (vitb16, toy)"
    )
    parser.add_argument("--matmul", type=int, default=2048, help="side of the floor's square matmul")
    parser.add_argument("--int8", choices=("auto", "torchao", "torch.ao"), default="auto")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: seconds (default); cpu: the process's CPU seconds (steadier when shared; --threads 1)",
    )
    parser.add_argument(
        "--text", metavar="VOCABULARY", help="measure the text tower on this vocabulary instead"
    )
    parser.add_argument("--text-fraction", type=float, default=1.0, help="share of the classes encoded")
    parser.add_argument("--demo", metavar="CKPT", help="time the demo's segmentation of a photo instead")
    parser.add_argument(
        "--kernels", action="store_true", help="also the bf16 kernels' GFLOP/s on the forward's shapes"
    )
    parser.add_argument("--parts", action="store_true", help="also the bf16 forward's CPU seconds per part")
    parser.add_argument(
        "--compile",
        choices=("blocks", "forward", "frozen"),
        help="also a torch.compile'd bf16 model (see above)",
    )
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3")
    torch.set_num_threads(args.threads)
    if args.text or args.demo:
        result = (
            text_benchmark(args.text, args.text_fraction)
            if args.text
            else demo_benchmark(args.demo, args.repeats)
        )
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return

    from mrovseg.benchmarking.build import build, random_text
    from mrovseg.benchmarking.flops import count_flops
    from mrovseg.serving.precision import cpu_flags, precision_context, prepare_model

    built = build(args.model, size=args.size)
    base = built.model
    text = random_text(base, args.classes)
    image = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    bf16 = prepare_model(copy.deepcopy(base), "bf16")
    int8 = copy.deepcopy(base)
    backend = quantize_int8(int8, args.int8)
    models = {"fp32": (base, "fp32"), "bf16": (bf16, "bf16"), "int8": (int8, "fp32")}
    if args.compile:
        models["bf16_compiled"] = (compiled_copy(bf16, args.compile), "bf16")
    parts = PartTimer(bf16) if args.parts else None

    def forward(name: str) -> torch.Tensor:
        model, precision = models[name]
        with torch.inference_mode(), precision_context(precision, "cpu"):
            return model.semantic_scores(image, text).float()

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    n = args.matmul
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    matmuls = {"fp32": lambda: a32 @ b32, "bf16": lambda: a16 @ b16}

    with torch.inference_mode():
        flops = count_flops(lambda: base.semantic_scores(image, text))
    labels = {}
    for name in models:  # also the warm-up (and the compilation)
        first = time.process_time()
        labels[name] = forward(name).argmax(dim=1)
        if name == "bf16_compiled":
            compile_first = time.process_time() - first
    for fn in matmuls.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in [*models, *(f"mm_{k}" for k in matmuls)]}
    for _ in range(args.repeats):
        for name in models:
            if parts is not None and name == "bf16":
                parts.start()
            times[name].append(timed(lambda name=name: forward(name), clock))
            if parts is not None and name == "bf16":
                parts.stop()
        for key, fn in matmuls.items():
            times[f"mm_{key}"].append(min(timed(fn, clock) for _ in range(3)))
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: 2 * n**3 / med[f"mm_{k}"] for k in matmuls}  # FLOP/s

    def agreement(name: str) -> float:
        return float((labels[name] == labels["fp32"]).float().mean())

    have = cpu_flags()
    result = {
        "fp32_s": round(med["fp32"], 3),
        "bf16_s": round(med["bf16"], 3),
        "int8_s": round(med["int8"], 3),
        "fp32_floor_s": round(flops / rate["fp32"], 3),
        "bf16_floor_s": round(flops / rate["bf16"], 3),
        "bf16_agreement": round(agreement("bf16"), 6),
        "int8_agreement": round(agreement("int8"), 6),
        "torch": torch.__version__,
        "cpu_flags": [f for f in REPORTED_FLAGS if f in have],
    }
    if args.compile:
        result["bf16_compiled_s"] = round(med["bf16_compiled"], 3)
        result["bf16_compiled_agreement"] = round(agreement("bf16_compiled"), 6)
        result["compile_first_s"] = round(compile_first, 1)
    if parts is not None:
        result["bf16_parts_s"] = parts.medians()
    if args.kernels:
        result["bf16_kernels_gflops"] = kernel_rates(clock)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    summary = [
        f"{built.label} {args.size}², {args.classes} classes, {flops / 1e9:.1f} GFLOPs",
        f"{args.threads} threads, {args.clock} clock, median of {args.repeats}",
        f"matmul {n}²: fp32 {rate['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rate['bf16'] / 1e9:.0f} GFLOP/s",
        f"bf16 {med['fp32'] / med['bf16']:.2f}x fp32, {med['bf16'] / (flops / rate['bf16']):.2f}x its floor",
        f"int8 ({backend}) {med['fp32'] / med['int8']:.2f}x fp32, {med['int8'] / med['bf16']:.2f}x bf16 time",
        f"runs {json.dumps({k: [round(t, 3) for t in v] for k, v in times.items()})}",
        f"load average {os.getloadavg()}",
    ]
    print("; ".join(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
