"""Runs one configuration over several seeds and prints each metric as mean ± std.

    python scripts/seeds.py --out outputs/seeds/default                      # the default experiment, seeds 0 1 2
    python scripts/seeds.py --out outputs/seeds/cls_key -- model.classifier_cls_key=true
    python scripts/seeds.py --out outputs/seeds/dense --entry eval -- model=dense_clip data=toy clip=toy
    python scripts/seeds.py --out outputs/seeds/p0 --seeds 0 1 2 3 --jobs 2 -- model.slice_ratio=0
    python scripts/seeds.py --collect outputs/seeds/default outputs/seeds/p0   # table of finished runs
    python scripts/seeds.py --collect outputs/mgca/full --metrics eval/units/metrics.json   # another file per seed

Each seed runs ``python -m mrovseg.<entry> <overrides> seed=S`` (and ``data.seed=S`` with
``--vary-data``) in its own run directory ``<out>/seed_<S>``; a seed whose ``metrics.json`` exists is
not run again, so an interrupted measurement resumes. The spread is the sample standard deviation
(ddof = 1) over seeds. A run's thread count changes its numbers, so it is fixed (``--threads``,
default 1) and written into ``<out>/summary.json`` with the torch version and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COLUMNS = ("mIoU", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU", "pixel_acc")


def run_seed(entry: str, overrides: list[str], seed: int, out: Path, threads: int, vary_data: bool) -> Path:
    """Runs one seed unless its ``metrics.json`` exists; returns the run directory."""
    run_dir = out / f"seed_{seed}"
    if (run_dir / "metrics.json").is_file():
        return run_dir
    seed_overrides = [f"seed={seed}"] + ([f"data.seed={seed}"] if vary_data else [])
    cmd = [
        sys.executable, "-m", f"mrovseg.{entry}", *overrides, *seed_overrides,
        f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(run_dir / "seeds_stdout.log", "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"seed {seed} failed (exit {proc.returncode}); see {run_dir / 'seeds_stdout.log'}")
    (run_dir / "seeds_time.txt").write_text(f"{time.time() - start:.1f}\n")
    return run_dir


def load_metrics(
    run_dirs: list[Path], benchmark: str | None, metrics_file: str = "metrics.json"
) -> list[dict]:
    """The metrics of one benchmark (default: the first in the file) from each run's ``metrics_file``."""
    rows = []
    for run_dir in run_dirs:
        metrics = json.loads((run_dir / metrics_file).read_text())
        name = benchmark or next(iter(metrics))
        if name not in metrics:
            raise KeyError(f"{run_dir / metrics_file} has no benchmark {name!r} (has {sorted(metrics)}).")
        rows.append(metrics[name])
    return rows


def summarize(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """``metric -> (mean, sample std, n)`` over the runs that report it (std 0 for one run)."""
    out = {}
    for col in COLUMNS:
        values = [float(r[col]) for r in rows if isinstance(r.get(col), (int, float))]
        if values:
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[col] = (statistics.fmean(values), std, len(values))
    return out


def markdown(named: list[tuple[str, dict[str, tuple[float, float, int]]]]) -> str:
    """One table row per configuration: ``mean ± std`` per metric and the number of seeds."""
    cols = [c for c in COLUMNS if any(c in s for _, s in named)]
    lines = ["| run | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, stats in named:
        n = max((v[2] for v in stats.values()), default=0)
        cells = [f"{stats[c][0]:.1f} ± {stats[c][1]:.1f}" if c in stats else "–" for c in cols]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finished_runs(out: Path, metrics_file: str = "metrics.json") -> list[Path]:
    """The ``seed_*`` directories under ``out`` that hold ``metrics_file``."""
    return sorted(p for p in out.glob("seed_*") if (p / metrics_file).is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    parser.add_argument("--out", type=Path, help="directory of this configuration's runs")
    parser.add_argument("--entry", default="train", choices=["train", "eval"], help="mrovseg entry point")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at the same time")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per run (numbers depend on it)")
    parser.add_argument("--vary-data", action="store_true", help="also set data.seed=S (other scenes)")
    parser.add_argument("--benchmark", default=None, help="benchmark key in metrics.json (default: first)")
    parser.add_argument("--collect", type=Path, nargs="+", help="only tabulate these finished directories")
    parser.add_argument(
        "--metrics",
        default="metrics.json",
        help="with --collect: the metrics file inside each seed_* directory",
    )
    args = parser.parse_args(argv)

    if args.collect:
        named = []
        for out in args.collect:
            runs = finished_runs(out, args.metrics)
            if not runs:
                print(f"error: no finished seed_*/{args.metrics} under {out}", file=sys.stderr)
                return 2
            named.append((out.name, summarize(load_metrics(runs, args.benchmark, args.metrics))))
        print(markdown(named))
        return 0
    if args.out is None:
        parser.error("--out is required unless --collect is given")

    import torch  # only for the version written beside the figures

    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        run_dirs = list(
            pool.map(
                lambda s: run_seed(args.entry, args.overrides, s, args.out, args.threads, args.vary_data),
                args.seeds,
            )
        )
    stats = summarize(load_metrics(run_dirs, args.benchmark))
    summary = {
        "command": " ".join([f"python -m mrovseg.{args.entry}", *args.overrides]),
        "seeds": args.seeds,
        "vary_data": args.vary_data,
        "threads": args.threads,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "metrics": {k: {"mean": m, "std": s, "n": n} for k, (m, s, n) in stats.items()},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(markdown([(args.out.name, stats)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
