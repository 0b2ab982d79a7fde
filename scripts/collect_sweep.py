"""Collects the ``metrics.json`` of every job of a Hydra multirun into one markdown table.

    python scripts/collect_sweep.py outputs/train/multiruns/<date>_<time> [--benchmark toy]

Each job directory is named ``<job number>_<overrides>`` (conf/hydra/default.yaml); the table has
one row per job with its overrides and the metrics of one benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mrovseg.training.metrics import SUMMARY_KEYS as COLUMNS


def collect(sweep_dir: Path, benchmark: str | None) -> list[tuple[str, dict]]:
    """Returns ``(job name, metrics of the benchmark)`` per job, in job order."""
    rows = []
    jobs = [p for p in sweep_dir.iterdir() if p.is_dir() and (p / "metrics.json").is_file()]
    for job in sorted(jobs, key=lambda p: int(p.name.split("_", 1)[0]) if p.name[0].isdigit() else 1 << 30):
        metrics = json.loads((job / "metrics.json").read_text())
        name = benchmark or next(iter(metrics))
        if name not in metrics:
            raise KeyError(f"{job / 'metrics.json'} has no benchmark {name!r} (has {sorted(metrics)}).")
        rows.append((job.name, metrics[name]))
    return rows


def to_markdown(rows: list[tuple[str, dict]]) -> str:
    cols = [c for c in COLUMNS if any(c in m for _, m in rows)]
    lines = ["| job | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, m in rows:
        cells = [f"{m[c]:.1f}" if isinstance(m.get(c), (int, float)) else "–" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the multirun directory (hydra.sweep.dir)")
    parser.add_argument(
        "--benchmark", default=None, help="benchmark key in metrics.json (default: the first)"
    )
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    rows = collect(args.sweep_dir, args.benchmark)
    if not rows:
        print(f"error: no job with metrics.json under {args.sweep_dir}", file=sys.stderr)
        return 2
    print(to_markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
