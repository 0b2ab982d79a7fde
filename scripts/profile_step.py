#!/usr/bin/env python
"""Where a training step's time goes on the CPU, and what the memory and speed switches change.

Three reports (one model built from its real config, random CLIP weights, batch ``--batch``):

``profile`` (default) — one training step (``mrovseg.benchmarking.train_step``: full criterion, deep
supervision, clipping, AdamW) under ``torch.profiler`` after one warm-up step: seconds and share of
the CLIP trunk, adapter, mask decoder, classifier (final + auxiliary), criterion (matcher, point
sampling, the rest = losses), backward and optimizer, beside each part's FLOPs and share of FLOPs
(``mrovseg.benchmarking.step_profile``); a part whose time share is far above its FLOP share is
bound by something else than arithmetic (memory traffic, Python, small ops).

``memory`` — the peak RSS increase of one training step with and without activation checkpointing
of the adapter blocks (``model.adapter.checkpoint``), each in a fresh process (``--checkpoint`` runs
one side), sampled every 2 ms (``mrovseg.benchmarking.memory.PeakMemory``; torch.cuda is n/a).

``compile`` — eval-mode inference latency of one ``--size``² image, eager against the trainable parts
compiled with ``torch.compile`` (``mrovseg.training.speed.compile_trainable``, Inductor), one timed run each
after a warm-up (the compilation), and their ratio.

Usage:
    python scripts/profile_step.py --model vitb16                      # profile table (markdown)
    python scripts/profile_step.py --model vitb16 --report memory      # both sides, 2 subprocesses
    python scripts/profile_step.py --model vitb16 --report compile
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from mrovseg.benchmarking.build import MODELS, build, random_text
from mrovseg.benchmarking.memory import MIB, PeakMemory
from mrovseg.benchmarking.report import markdown
from mrovseg.benchmarking.step_profile import PARTS, STEP, part_flops, profile_step
from mrovseg.benchmarking.timing import timed
from mrovseg.benchmarking.train_step import make_train_step
from mrovseg.training.speed import compile_trainable


def stamp() -> str:
    """torch version, threads, load and date: printed under every table."""
    load = os.getloadavg()[0]
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.1f}, "
        f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}"
    )


def profile_report(args: argparse.Namespace) -> str:
    """The profile table: seconds, share of the step, GFLOPs and share of the FLOPs per part."""
    built = build(args.model, overrides=args.override)
    step = make_train_step(built, args.batch, "cpu", args.classes)
    flops = part_flops(step)  # also the warm-up step
    seconds, prof = profile_step(step, warmup=0)
    total_s, total_f = seconds[STEP], flops[STEP]
    rows = []
    for label, parent in PARTS:
        s, f = seconds.get(label, 0.0), flops.get(label, 0)
        name = f"  {label}" if parent else label
        rows.append(
            f"| {name} | {s:.2f} | {100 * s / total_s:.1f} | {f / 1e9:.1f} | {100 * f / total_f:.1f} |"
        )
    top = sum(seconds.get(label, 0.0) for label, parent in PARTS if parent is None)
    top_f = sum(flops.get(label, 0) for label, parent in PARTS if parent is None)
    rows.append(
        f"| other (inputs, targets, glue) | {total_s - top:.2f} | {100 * (total_s - top) / total_s:.1f} "
        f"| {(total_f - top_f) / 1e9:.1f} | {100 * (total_f - top_f) / total_f:.1f} |"
    )
    rows.append(f"| **{STEP}** | {total_s:.2f} | 100 | {total_f / 1e9:.1f} | 100 |")
    header = "| part | seconds | % of step | GFLOPs | % of FLOPs |"
    table = markdown(header, rows)
    ops = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top_ops)
    return f"{table}\n\n{built.label}, {built.side}², batch {args.batch}, {args.classes} classes; {stamp()}\n\n{ops}"


def memory_side(args: argparse.Namespace, checkpoint: bool) -> dict[str, Any]:
    """Peak RSS increase of one training step (after a warm-up step) with or without checkpointing."""
    overrides = [*args.override, f"model.adapter.checkpoint={str(checkpoint).lower()}"]
    built = build(args.model, overrides=overrides)
    step = make_train_step(built, args.batch, "cpu", args.classes)
    step.step()
    mem = PeakMemory(torch.device("cpu"))
    with mem:
        start = time.perf_counter()
        loss = step.step()
        seconds = time.perf_counter() - start
    assert mem.stat is not None
    return {
        "checkpoint": checkpoint,
        "peak_rss_mib": mem.stat.peak / MIB,
        "delta_mib": mem.stat.delta / MIB,
        "step_s": seconds,
        "loss": loss,
    }


def memory_report(args: argparse.Namespace) -> str:
    """Both sides of ``memory_side``, each in a fresh process, as a markdown table."""
    results = []
    for checkpoint in (False, True):
        cmd = [
            sys.executable,
            __file__,
            "--report",
            "memory-side",
            "--model",
            args.model,
            "--batch",
            str(args.batch),
        ]
        cmd += ["--classes", str(args.classes), *[f"--override={o}" for o in args.override]]
        cmd += ["--checkpoint"] if checkpoint else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = [
        f"| {'on' if r['checkpoint'] else 'off'} | {r['delta_mib']:.0f} | {r['peak_rss_mib']:.0f} | {r['step_s']:.1f} "
        f"| {r['loss']:.4f} |"
        for r in results
    ]
    header = (
        "| adapter checkpointing | peak RSS increase in a step (MiB) | peak RSS (MiB) | step (s) | loss |"
    )
    return f"{markdown(header, rows)}\n\n{args.model}, batch {args.batch}; {stamp()}"


def compile_report(args: argparse.Namespace) -> str:
    """Eager vs compiled inference latency of one image (one timed run each, after a warm-up)."""
    built = build(args.model, overrides=args.override)
    model, side = built.model.eval(), built.side
    text = random_text(model, args.classes)
    images = torch.rand(1, 3, side, side)
    cpu = torch.device("cpu")

    def call() -> Any:
        with torch.no_grad():
            return model.semantic_scores(images, text)

    timed(call, cpu)
    eager = timed(call, cpu)
    reference = call()
    compile_trainable(model)
    compile_s = timed(call, cpu)
    compiled = timed(call, cpu)
    diff = float((call() - reference).abs().max())
    header = (
        "| eager (s) | compiled (s) | eager / compiled | first compiled call (s) | max abs diff of scores |"
    )
    row = f"| {eager:.2f} | {compiled:.2f} | {eager / compiled:.2f} | {compile_s:.0f} | {diff:.1e} |"
    return f"{markdown(header, [row])}\n\n{built.label}, {side}², batch 1, eval, no_grad; {stamp()}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--report", choices=["profile", "memory", "compile", "memory-side"], default="profile"
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="vitb16")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--classes", type=int, default=171)
    parser.add_argument("--override", action="append", default=[], help="a config override (repeatable)")
    parser.add_argument("--checkpoint", action="store_true", help="memory-side: adapter checkpointing on")
    parser.add_argument("--top-ops", type=int, default=15, help="profile: aten ops listed by self time")
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Runs the chosen report and prints it."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report == "memory-side":
        out = json.dumps(memory_side(args, args.checkpoint))
    else:
        out = {"profile": profile_report, "memory": memory_report, "compile": compile_report}[args.report](
            args
        )
    print(out)
    return out


if __name__ == "__main__":
    main()
