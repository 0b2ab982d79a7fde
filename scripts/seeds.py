"""Runs one configuration over several seeds and prints each metric as mean ± std.

    python scripts/seeds.py --out outputs/seeds/default                      # the default experiment, seeds 0 1 2
    python scripts/seeds.py --out outputs/seeds/cls_key -- model.classifier_cls_key=true
    python scripts/seeds.py --out outputs/seeds/dense --entry eval -- experiment=dense_clip_toy
    python scripts/seeds.py --out outputs/seeds/p0 --seeds 0 1 2 3 --jobs 2 -- model.slice_ratio=0
    python scripts/seeds.py --collect outputs/seeds/default outputs/seeds/p0   # table of finished runs
    python scripts/seeds.py --collect outputs/mgca/full --metrics eval/units/metrics.json   # another file per seed
    python scripts/seeds.py --collect outputs/seeds/default outputs/seeds/p0 --reference outputs/seeds/default
        # + paired differences to the reference: mean, 95 % t interval over the shared seeds, verdict
    python scripts/seeds.py --collect outputs/t2/baseline outputs/t2/adapter outputs/t2/decoder outputs/t2/full --steps
        # an ablation ladder (the paper's Table 2): each row paired against the row before it
    python scripts/seeds.py --collect outputs/seeds/default --spread-goal mIoU=1.5 novel_mIoU=3 small_mIoU=1.5
        # + each setting's std over seeds with its 95 % interval: goal met, not met or undecided
    python scripts/seeds.py --collect outputs/seeds/default outputs/seeds/p0 --reference outputs/seeds/default --power 1 2 4
        # + what the seeds can decide: the smallest effect decided with 80 % power, seeds needed for 1, 2, 4 points
    python scripts/seeds.py --out outputs/seeds/order --seed-key data.order_seed -- seed=0
        # the data order alone varies (initial weights fixed); with data.order_seed=0 and seed=S: the weights alone
    python -m mrovseg.train -m seed=0,1,2,3,4 model.slice_ratio=0,0.5 hydra.sweep.dir=outputs/sweeps/p
    python scripts/seeds.py --multirun outputs/sweeps/p --reference model.slice_ratio=0.5
        # a Hydra multirun (settings × seeds) as the same table: jobs grouped by their overrides less seed=;
        # also a sweep run through hydra/launcher=slurm|local (submitit): jobs still without metrics.json are
        # listed on stderr with their log folder <sweep dir>/.submitit/<job id>

Each seed runs ``python -m mrovseg.<entry> <overrides> seed=S`` (and ``data.seed=S`` with
``--vary-data``) in its own run directory ``<out>/seed_<S>``; a seed whose ``metrics.json`` exists is
not run again, so an interrupted measurement resumes (a seed interrupted mid-run starts over, with
``overwrite=true``). The spread is the sample standard deviation
(ddof = 1) over seeds. A run's thread count changes its numbers, so it is fixed (``--threads``,
default 1) and written into ``<out>/summary.json`` with the torch version and the command.

Deciding between settings (``--reference``): each setting is compared with the reference **paired on
the seeds both ran** (the same seed gives both the same initial weights and data order): per metric the
mean difference with its 95 % Student-t interval and the verdict **better**, **worse** or **no difference**
(``mrovseg.benchmarking.seed_stats``).

Deciding a spread goal (``--spread-goal mIoU=1.5 novel_mIoU=3 small_mIoU=1.5``): per setting, the sample std
over its seeds with a 95 % chi-square interval, and **met** (interval ≤ goal), **not met** (above it) or
**undecided** (``mrovseg.benchmarking.seed_stats``).

Planning seeds (``--power 1 2 4``): per setting and metric the std ``σ_d`` of the per-seed differences
(to ``--reference`` on the shared seeds, else ``√2·σ`` of independent runs), the smallest effect those
seeds decide with 80 % power, and the seeds needed to decide each effect (noncentral t; ``seed_stats``).
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
from typing import Any

from mrovseg.benchmarking.seed_stats import paired_difference  # noqa: F401 (the tests' entry point)
from mrovseg.benchmarking.seed_tables import (
    CPU_COLUMN,
    markdown,
    paired_markdown,
    parse_effects,
    parse_goals,
    power_markdown,
    spread_markdown,
    summarize,
)


def run_seed(
    entry: str,
    overrides: list[str],
    seed: int,
    out: Path,
    threads: int,
    vary_data: bool,
    seed_key: str = "seed",
) -> Path:
    """Runs one seed unless its ``metrics.json`` exists; returns the run directory. ``seed_key``: the
    setting that takes the seed's value (``seed``; e.g. ``data.order_seed`` to vary the data order alone)."""
    run_dir = out / f"seed_{seed}"
    if (run_dir / "metrics.json").is_file():
        return run_dir
    seed_overrides = [f"{seed_key}={seed}"] + ([f"data.seed={seed}"] if vary_data else [])
    if entry == "train" and (run_dir / "checkpoints").is_dir():
        # an interrupted seed: a measurement is one uninterrupted run, so it starts over in its directory
        # (the run directory guard would otherwise refuse the folder; see mrovseg.training.preflight)
        seed_overrides.append("overwrite=true")
    cmd = [
        sys.executable, "-m", f"mrovseg.{entry}", *overrides, *seed_overrides,
        f"hydra.run.dir={run_dir}", "trainer.enable_progress_bar=false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(run_dir / "seeds_stdout.log", "w") as log:
        returncode, cpu_seconds = run_counting_cpu(cmd, env, log)
    if returncode != 0:
        raise RuntimeError(f"seed {seed} failed (exit {returncode}); see {run_dir / 'seeds_stdout.log'}")
    (run_dir / "seeds_time.txt").write_text(f"{time.time() - start:.1f}\n")  # wall seconds
    (run_dir / "seeds_cpu.txt").write_text(f"{cpu_seconds:.1f}\n")  # user + system CPU seconds of the run
    return run_dir


def run_counting_cpu(cmd: list[str], env: dict[str, str], log: Any) -> tuple[int, float]:
    """Runs ``cmd`` with its output to ``log``; returns its exit code and its CPU seconds (user + system,
    from ``os.wait4``: this child alone, even while other seeds run in parallel threads)."""
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


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


def cpu_seconds(run_dirs: list[Path]) -> dict[str, tuple[float, float, int]]:
    """``{CPU_COLUMN: (mean, std, n)}`` over the runs with a ``seeds_cpu.txt`` (empty when none has)."""
    values = [float((r / "seeds_cpu.txt").read_text()) for r in run_dirs if (r / "seeds_cpu.txt").is_file()]
    if not values:
        return {}
    return {
        CPU_COLUMN: (
            statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else 0.0,
            len(values),
        )
    }


def seed_of(run_dir: Path) -> int:
    """The seed of a ``seed_<S>`` directory or of a multirun job (its ``.hydra/overrides.yaml``)."""
    if run_dir.name.startswith("seed_"):
        return int(run_dir.name[5:])
    for line in job_overrides(run_dir):
        if line.startswith("seed="):
            return int(line[5:])
    raise ValueError(f"{run_dir}: no seed_<S> name and no seed= override in .hydra/overrides.yaml")


def job_overrides(run_dir: Path) -> list[str]:
    """The overrides of a Hydra job (``.hydra/overrides.yaml``; empty when absent)."""
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])] if path.is_file() else []


def drew_by_name(run_dir: Path) -> bool | None:
    """Whether a training run drew its seed's numbers by name (``seed_by_name``); None for other runs."""
    import yaml

    path = run_dir / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(path.read_text()) if path.is_file() else None
    if not isinstance(cfg, dict) or cfg.get("task_name") != "train":
        return None
    return bool(cfg.get("seed_by_name", False))


def multirun_settings(sweep_dir: Path, metrics_file: str = "metrics.json") -> dict[str, list[Path]]:
    """The finished jobs of a Hydra multirun grouped by setting: the overrides that differ between jobs,
    less ``seed=`` (overrides every job shares are left out of the names)."""
    jobs = sorted(p.parent for p in sweep_dir.rglob(metrics_file))
    overrides = {job: [o for o in job_overrides(job) if not o.startswith("seed=")] for job in jobs}
    shared = set.intersection(*(set(o) for o in overrides.values())) if jobs else set()
    groups: dict[str, list[Path]] = {}
    for job in jobs:
        name = " ".join(o for o in overrides[job] if o not in shared)
        groups.setdefault(name or "(no override)", []).append(job)
    return groups


def unfinished_jobs(sweep_dir: Path, metrics_file: str = "metrics.json") -> dict[Path, Path | None]:
    """The jobs of a multirun without ``metrics_file`` (running, waiting in a queue or failed), each with
    its submitit log folder (``<sweep dir>/.submitit/<job id>``, from ``.hydra/hydra.yaml``) when the sweep
    ran through ``hydra/launcher=slurm|local``, else None."""
    import yaml

    out: dict[Path, Path | None] = {}
    for overrides in sorted(sweep_dir.rglob(".hydra/overrides.yaml")):
        job = overrides.parent.parent
        if (job / metrics_file).is_file():
            continue
        hydra_yaml = job / ".hydra" / "hydra.yaml"
        job_id = (yaml.safe_load(hydra_yaml.read_text()) or {}).get("hydra", {}).get("job", {}).get("id")
        logs = sweep_dir / ".submitit" / str(job_id) if hydra_yaml.is_file() and job_id else None
        out[job] = logs if logs is not None and logs.is_dir() else None
    return out


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
    parser.add_argument(
        "--seed-key",
        default="seed",
        help="the setting each seed S sets (default seed=S; data.order_seed: the data order alone, with seed=0 fixed)",
    )
    parser.add_argument("--benchmark", default=None, help="benchmark key in metrics.json (default: first)")
    parser.add_argument("--collect", type=Path, nargs="+", help="only tabulate these finished directories")
    parser.add_argument(
        "--metrics",
        default="metrics.json",
        help="with --collect: the metrics file inside each seed_* directory",
    )
    parser.add_argument("--multirun", type=Path, help="tabulate a Hydra multirun's jobs (settings × seeds)")
    parser.add_argument(
        "--reference",
        help="also print paired differences to this setting (a --collect directory or a multirun setting)",
    )
    parser.add_argument(
        "--steps",
        action="store_true",
        help="also print paired differences of each setting to the one before it (an ablation ladder)",
    )
    parser.add_argument(
        "--spread-goal",
        nargs="+",
        metavar="METRIC=STD",
        help="also print each setting's std over seeds with its 95 %% interval against these goals",
    )
    parser.add_argument(
        "--power",
        nargs="+",
        metavar="DELTA",
        help="also print what the seeds can decide: the seeds needed for these effects (metric points)",
    )
    args = parser.parse_args(argv)
    goals = parse_goals(args.spread_goal) if args.spread_goal else {}
    effects = parse_effects(args.power) if args.power else []

    if args.collect or args.multirun:
        if args.multirun:
            groups = multirun_settings(args.multirun, args.metrics)
            unfinished = unfinished_jobs(args.multirun, args.metrics)
            if unfinished:  # e.g. a cluster sweep still running: the table has the finished jobs only
                print(
                    f"note: {len(unfinished)} job(s) without {args.metrics} (running, queued or failed):",
                    file=sys.stderr,
                )
                for job, logs in unfinished.items():
                    print(f"  {job}" + (f"  (submitit logs: {logs})" if logs else ""), file=sys.stderr)
            if not groups:
                print(f"error: no finished job with {args.metrics} under {args.multirun}", file=sys.stderr)
                return 2
        else:
            groups = {}
            for out in args.collect:
                runs = finished_runs(out, args.metrics)
                if not runs:
                    print(f"error: no finished seed_*/{args.metrics} under {out}", file=sys.stderr)
                    return 2
                groups[str(out) if args.reference and str(out) == args.reference else out.name] = runs
        named = [
            (k, {**summarize(load_metrics(v, args.benchmark, args.metrics)), **cpu_seconds(v)})
            for k, v in groups.items()
        ]
        print(markdown(named))
        if args.reference or args.steps or goals or effects:
            by_seed = {
                name: dict(zip([seed_of(r) for r in runs], load_metrics(runs, args.benchmark, args.metrics)))
                for name, runs in groups.items()
            }
            if args.reference and args.reference not in by_seed:
                print(f"error: reference {args.reference!r} is none of {sorted(by_seed)}", file=sys.stderr)
                return 2
            drawn = {name: {drew_by_name(r) for r in runs} - {None} for name, runs in groups.items()}
            if len(set().union(*drawn.values())) > 1:
                print(
                    "warning: some training runs drew by name (seed_by_name=true) and some did not: "
                    + ", ".join(f"{k}: {sorted(v)}" for k, v in drawn.items() if v)
                    + "; a seed's numbers differ between them, so they pair only on the seed's number",
                    file=sys.stderr,
                )
            for reference in ([args.reference] if args.reference else []) + ([None] if args.steps else []):
                print()
                print(paired_markdown(list(by_seed.items()), reference))
            if goals:
                print()
                print(spread_markdown(list(by_seed.items()), goals))
            if effects:
                print()
                print(power_markdown(list(by_seed.items()), args.reference, effects))
        return 0
    if args.out is None:
        parser.error("--out is required unless --collect is given")

    import torch  # only for the version written beside the figures

    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        run_dirs = list(
            pool.map(
                lambda s: run_seed(
                    args.entry, args.overrides, s, args.out, args.threads, args.vary_data, args.seed_key
                ),
                args.seeds,
            )
        )
    stats = summarize(load_metrics(run_dirs, args.benchmark))
    summary = {
        "command": " ".join([f"python -m mrovseg.{args.entry}", *args.overrides]),
        "seeds": args.seeds,
        "vary_data": args.vary_data,
        "seed_key": args.seed_key,
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
