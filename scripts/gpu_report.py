#!/usr/bin/env python
"""One command for the first GPU hour: inference, training, numerics and environment in one report.

Writes ``gpu_report.json`` (every measurement record, the numerics and the environment, including the
SDPA kernels) and ``gpu_report.md`` (a table for ``BENCHMARKS.md``) into ``--out``. Designed to finish
in under 8 minutes on one GPU (``--budget-s``, default 420 s of measurements; each model and section
gets a share, unused time rolls over, and what does not fit is recorded as ``skipped (budget)``; an
out-of-memory batch is recorded as ``oom``). See ``mrovseg.benchmarking.gpu_report``.

Usage:
    python scripts/gpu_report.py                         # CUDA, ViT-B/16 + ViT-L/14, fp32 + bf16
    python scripts/gpu_report.py --device cpu --tiny     # the toy model on the CPU, seconds (the test)
    python scripts/gpu_report.py --override model.adapter.checkpoint=true   # with a switch
    make gpu-report
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from mrovseg.benchmarking.build import MODELS
from mrovseg.benchmarking.environment import header
from mrovseg.benchmarking.gpu_report import Options, Report, run_report
from mrovseg.benchmarking.report import gpu_report_markdown


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu")
    parser.add_argument("--tiny", action="store_true", help="toy model, 1 repeat, small images (CPU test)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None)
    parser.add_argument("--budget-s", type=float, default=None, help="seconds of measurements (default 420)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (median)")
    parser.add_argument("--out", type=Path, default=Path("outputs/gpu_report"), help="output folder")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--override",
        action="append",
        default=None,
        help="config override, e.g. model.adapter.checkpoint=true",
    )
    args = parser.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here (use --device cpu --tiny on a CPU)")
    return args


def main(argv: Sequence[str] | None = None) -> Report:
    """Runs the report and writes ``gpu_report.json`` and ``gpu_report.md`` into ``--out``."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {"device": args.device}
    for key in ("models", "budget_s", "repeats", "override"):
        value = getattr(args, key)
        if value is not None:
            overrides["overrides" if key == "override" else key] = value
    if args.tiny and args.override:
        from mrovseg.benchmarking.gpu_report import TINY_OVERRIDES

        overrides["overrides"] = (*TINY_OVERRIDES, *args.override)
    opts = Options.tiny_cpu(**overrides) if args.tiny else Options(**overrides)
    report = run_report(opts)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"options": asdict(opts), **asdict(report)}
    (args.out / "gpu_report.json").write_text(json.dumps(payload, indent=2))
    markdown = gpu_report_markdown(report.environment, report.records, report.numerics)
    (args.out / "gpu_report.md").write_text(markdown)
    print(header({**report.environment, "bf16": False}), file=sys.stderr)
    print(markdown)
    return report


if __name__ == "__main__":
    main()
