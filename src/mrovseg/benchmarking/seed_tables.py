"""Markdown tables of the lab's seed runs (``scripts/seeds.py``): mean ± std per setting, paired
differences to a reference or along a ladder, the spread against goals, and what the seeds can decide
(the statistics are :mod:`mrovseg.benchmarking.seed_stats`)."""

from __future__ import annotations

import itertools
import statistics

from mrovseg.benchmarking.seed_stats import (
    paired_difference,
    seeds_needed,
    smallest_effect,
    spread_verdict,
    std_interval,
)

COLUMNS = ("mIoU", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU", "pixel_acc")

#: The column of CPU seconds per run (``seeds_cpu.txt``, written by ``scripts/seeds.py``), where runs have it.
CPU_COLUMN = "CPU-s / run"


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
    cols = [c for c in (*COLUMNS, CPU_COLUMN) if any(c in s for _, s in named)]
    lines = ["| run | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, stats in named:
        n = max((v[2] for c, v in stats.items() if c != CPU_COLUMN), default=0)
        digits = {CPU_COLUMN: 0}
        cells = [
            f"{stats[c][0]:.{digits.get(c, 1)}f} ± {stats[c][1]:.{digits.get(c, 1)}f}" if c in stats else "–"
            for c in cols
        ]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed(runs: dict[int, dict], metric: str) -> dict[int, float]:
    """``seed -> value`` of one metric (seeds whose run does not report it are left out)."""
    return {s: float(r[metric]) for s, r in runs.items() if isinstance(r.get(metric), (int, float))}


def paired_markdown(named: list[tuple[str, dict[int, dict]]], reference: str | None) -> str:
    """Per metric ``Δ mean [lo, hi] verdict``: one row per setting other than ``reference`` against it,
    or with ``reference=None`` one row per step of a ladder, each setting against the one before it."""
    cols = [c for c in COLUMNS if any(per_seed(runs, c) for _, runs in named)]
    if reference is None:
        pairs = [
            (f"{prev} → {name}", runs, prev_runs)
            for (prev, prev_runs), (name, runs) in itertools.pairwise(named)
        ]
        title = "Paired on seeds, 95 % t interval, each row against the row before it"
    else:
        ref = dict(named)[reference]
        pairs = [(name, runs, ref) for name, runs in named if name != reference]
        title = f"Paired on seeds, 95 % t interval, reference **{reference}**"
    lines = [title, "", "| setting | seeds | " + " | ".join(f"Δ {c}" for c in cols) + " |"]
    lines.append("|---|---|" + "---|" * len(cols))
    for name, runs, ref in pairs:
        cells, n = [], 0
        for c in cols:
            d = paired_difference(per_seed(runs, c), per_seed(ref, c))
            n = max(n, d["n"])
            if d["lo"] is None:
                cells.append(d["verdict"] if d["mean"] is None else f"{d['mean']:+.1f} (n < 2)")
            else:
                cells.append(f"{d['mean']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}] {d['verdict']}")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread_markdown(named: list[tuple[str, dict[int, dict]]], goals: dict[str, float]) -> str:
    """Per setting and goal metric: the std over seeds with its 95 % chi-square interval and whether
    the goal ``std ≤ g`` is met, not met or undecided (:mod:`mrovseg.benchmarking.seed_stats`)."""
    lines = ["Spread over seeds: sample std [95 % chi-square interval] against the goal std ≤ g", ""]
    lines.append("| setting | seeds | " + " | ".join(f"std {m} (≤ {g:g})" for m, g in goals.items()) + " |")
    lines.append("|---|---|" + "---|" * len(goals))
    for name, runs in named:
        cells, n = [], 0
        for metric, goal in goals.items():
            iv = std_interval(list(per_seed(runs, metric).values()))
            n = max(n, iv["n"])
            if iv["lo"] is None:
                cells.append("n < 2")
            else:
                verdict = spread_verdict(iv, goal)
                cells.append(f"{iv['std']:.1f} [{iv['lo']:.1f}, {iv['hi']:.1f}] {verdict}")
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_goals(items: list[str]) -> dict[str, float]:
    """``["mIoU=1.5", ...]`` → ``{"mIoU": 1.5, ...}``; a clear error for anything else."""
    goals = {}
    for item in items:
        metric, _, value = item.partition("=")
        try:
            goal = float(value)
        except ValueError:
            goal = None
        if goal is None or metric not in COLUMNS:
            raise SystemExit(
                f"error: --spread-goal {item!r}: expected METRIC=VALUE with METRIC one of {', '.join(COLUMNS)}"
            )
        goals[metric] = goal
    return goals


def parse_effects(items: list[str]) -> list[float]:
    """``["1", "2.5"]`` → ``[1.0, 2.5]``: positive effect sizes in metric points; a clear error otherwise."""
    effects = []
    for item in items:
        try:
            effect = float(item)
        except ValueError:
            effect = -1.0
        if not effect > 0:
            raise SystemExit(
                f"error: --power {item!r}: expected a positive effect size in metric points, e.g. 2"
            )
        effects.append(effect)
    return effects


def power_markdown(
    named: list[tuple[str, dict[int, dict]]],
    reference: str | None,
    effects: list[float],
    metrics: tuple[str, ...] = ("mIoU", "novel_mIoU", "small_mIoU"),
    power: float = 0.8,
) -> str:
    """What the seeds can decide, per setting and metric: the std ``σ_d`` of the per-seed differences,
    the smallest effect these seeds decide with probability ``power`` and the seeds needed for each of
    ``effects`` (:func:`~mrovseg.benchmarking.seed_stats.seeds_needed`). Against ``reference``, ``σ_d`` is
    measured on the shared seeds; without one, each setting's runs are taken as independent of another
    setting's (``σ_d = √2·σ``, no benefit from pairing)."""
    pct = f"{100 * power:g} %"
    lines = [
        f"What the seeds can decide ({pct} power, 95 % paired t): σ_d = std of the per-seed differences"
        + (f" to **{reference}**" if reference else " (independent runs: √2 × the setting's std)"),
        "",
        f"| setting | metric | seeds | σ_d | Δ decided with these seeds ({pct}) | "
        + " | ".join(f"seeds to decide Δ = {e:g}" for e in effects)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(effects),
    ]
    ref_runs = dict(named).get(reference) if reference else None
    for name, runs in named:
        if reference is not None and name == reference:
            continue
        for metric in metrics:
            if ref_runs is not None:  # the std of the differences on the shared seeds
                d = paired_difference(per_seed(runs, metric), per_seed(ref_runs, metric))
                n, sd = d["n"], d.get("sd")
            else:  # independent runs: √2 × the setting's own std
                iv = std_interval(list(per_seed(runs, metric).values()))
                n, sd = iv["n"], iv["std"] * 2**0.5 if iv["std"] is not None else None
            if sd is None:
                continue
            if sd == 0:
                cells = ["any"] + ["2"] * len(effects)
            else:
                needed = [seeds_needed(e, sd, power) for e in effects]
                cells = [f"{smallest_effect(sd, n, power):.1f}"]
                cells += [str(n) if n is not None else "> 10000" for n in needed]
            lines.append(f"| {name} | {metric} | {n} | {sd:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
