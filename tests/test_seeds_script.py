"""Tests of ``scripts/seeds.py``: mean ± std over seeds, resuming, the collected table."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

from mrovseg.constants import REPO_ROOT

spec = importlib.util.spec_from_file_location("seeds", REPO_ROOT / "scripts" / "seeds.py")
seeds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seeds)


def write_run(out: Path, seed: int, miou: float, novel: float) -> None:
    run = out / f"seed_{seed}"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(
        json.dumps({"toy": {"mIoU": miou, "novel_mIoU": novel, "num_images": 4}})
    )


def test_summary_is_mean_and_sample_std(tmp_path: Path) -> None:
    for seed, (m, n) in enumerate([(50.0, 40.0), (54.0, 44.0), (58.0, 30.0)]):
        write_run(tmp_path / "cfg", seed, m, n)
    stats = seeds.summarize(seeds.load_metrics(seeds.finished_runs(tmp_path / "cfg"), None))
    assert stats["mIoU"] == pytest.approx((54.0, 4.0, 3))
    assert stats["novel_mIoU"] == pytest.approx((38.0, statistics.stdev([40.0, 44.0, 30.0]), 3))
    assert "hIoU" not in stats  # not reported by the runs, so not invented


def test_collect_prints_one_row_per_configuration(tmp_path: Path, capsys) -> None:
    for seed, m in enumerate([50.0, 52.0]):
        write_run(tmp_path / "a", seed, m, 10.0)
    write_run(tmp_path / "b", 0, 70.0, 20.0)
    assert seeds.main(["--collect", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| run | seeds | mIoU | novel_mIoU |"
    assert out[2] == "| a | 2 | 51.0 ± 1.4 | 10.0 ± 0.0 |"
    assert out[3] == "| b | 1 | 70.0 ± 0.0 | 20.0 ± 0.0 |"


def test_finished_seed_is_not_run_again(tmp_path: Path) -> None:
    write_run(tmp_path, 7, 1.0, 1.0)
    # An entry point that does not exist would fail if it were launched.
    assert seeds.run_seed("no_such_entry", [], 7, tmp_path, 1, False) == tmp_path / "seed_7"


def test_failed_seed_names_its_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"seed 3 failed .*seeds_stdout.log"):
        seeds.run_seed("no_such_entry", [], 3, tmp_path, 1, False)


def test_unknown_benchmark_is_named(tmp_path: Path) -> None:
    write_run(tmp_path, 0, 1.0, 1.0)
    with pytest.raises(KeyError, match="no benchmark 'ade150'"):
        seeds.load_metrics([tmp_path / "seed_0"], "ade150")


def test_collect_reads_another_metrics_file_per_seed(tmp_path: Path, capsys) -> None:
    for seed, m in enumerate([30.0, 34.0]):
        run = tmp_path / "mgca" / f"seed_{seed}" / "eval" / "units"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"toy": {"mIoU": m}}))
    args = ["--collect", str(tmp_path / "mgca"), "--metrics", "eval/units/metrics.json"]
    assert seeds.main(args) == 0
    assert capsys.readouterr().out.splitlines()[2] == "| mgca | 2 | 32.0 ± 2.8 |"
    assert seeds.main(["--collect", str(tmp_path / "mgca")]) == 2  # no seed_*/metrics.json there
    assert "no finished seed_*/metrics.json" in capsys.readouterr().err


def test_paired_interval_matches_a_hand_computation() -> None:
    """Differences 2, 4, 6 (n = 3): mean 4, sd 2, t(0.975, 2) = 4.302653: half-width 4.9683."""
    ref = {0: 50.0, 1: 50.0, 2: 50.0, 7: 99.0}  # seed 7 is not shared: left out
    setting = {0: 52.0, 1: 54.0, 2: 56.0}
    d = seeds.paired_difference(setting, ref)
    half = 4.302653 * 2.0 / 3**0.5
    assert d["n"] == 3 and d["mean"] == pytest.approx(4.0)
    assert d["lo"] == pytest.approx(4.0 - half, abs=1e-4) and d["hi"] == pytest.approx(4.0 + half, abs=1e-4)
    assert d["verdict"] == "no difference"  # the interval [-0.97, 8.97] contains 0
    tight = seeds.paired_difference({0: 53.0, 1: 54.0, 2: 55.0}, {0: 50.0, 1: 50.0, 2: 50.0})
    assert tight["verdict"] == "better" and tight["lo"] > 0  # 4 ± 2.48
    worse = seeds.paired_difference({0: 47.0, 1: 46.0, 2: 45.0}, {0: 50.0, 1: 50.0, 2: 50.0})
    assert worse["verdict"] == "worse" and worse["hi"] < 0
    assert seeds.paired_difference({0: 1.0}, {0: 0.0})["verdict"] == "n < 2"


def test_std_interval_matches_a_hand_computation() -> None:
    """Values 1..5: s = √2.5 = 1.5811; χ²(0.975, 4) = 11.1433, χ²(0.025, 4) = 0.48442:
    [s·√(4/11.1433), s·√(4/0.48442)] = [0.9473, 4.5435]."""
    from mrovseg.benchmarking.seed_stats import spread_verdict, std_interval

    iv = std_interval([3.0, 1.0, 5.0, 2.0, 4.0])
    assert iv["n"] == 5 and iv["std"] == pytest.approx(1.58114, abs=1e-5)
    assert iv["lo"] == pytest.approx(0.94731, abs=1e-4) and iv["hi"] == pytest.approx(4.54349, abs=1e-4)
    assert spread_verdict(iv, 5.0) == "met" and spread_verdict(iv, 0.9) == "not met"
    assert spread_verdict(iv, 1.5) == "undecided"
    assert std_interval([1.0])["lo"] is None and spread_verdict(std_interval([1.0]), 1.0) == "n < 2"


def test_std_ratio_interval_matches_a_hand_computation() -> None:
    """s_a = 2, s_b = 1 over 5 values each: F_0.975(4, 4) = 9.6045, so σ_a/σ_b in [2/√9.6045, 2·√9.6045]."""
    from mrovseg.benchmarking.seed_stats import std_ratio_interval

    iv = std_ratio_interval(2.0, 5, 1.0, 5)
    assert iv["ratio"] == 2.0 and iv["verdict"] == "no difference"
    assert iv["lo"] == pytest.approx(0.64535, abs=1e-4) and iv["hi"] == pytest.approx(6.1982, abs=1e-3)
    assert std_ratio_interval(1.0, 30, 4.0, 30)["verdict"] == "smaller"
    assert std_ratio_interval(4.0, 30, 1.0, 30)["verdict"] == "larger"
    with pytest.raises(ValueError, match="needs n >= 2"):
        std_ratio_interval(1.0, 1, 1.0, 5)


def test_spread_goal_table_and_bad_goal(tmp_path: Path, capsys) -> None:
    for seed, m in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        write_run(tmp_path / "a", seed, m, 10.0 + 0.01 * seed)
    assert seeds.main(["--collect", str(tmp_path / "a"), "--spread-goal", "mIoU=1.5", "novel_mIoU=3"]) == 0
    out = capsys.readouterr().out.split("Spread over seeds")[1]
    row = next(line for line in out.splitlines() if line.startswith("| a |"))
    assert "| 5 | 1.6 [0.9, 4.5] undecided | 0.0 [0.0, 0.0] met |" in row
    for bad in ("mIoU", "mIoU=x", "accuracy=1"):
        with pytest.raises(SystemExit, match="expected METRIC=VALUE"):
            seeds.main(["--collect", str(tmp_path / "a"), "--spread-goal", bad])


def test_pairing_rows_that_drew_differently_is_warned(tmp_path: Path, capsys) -> None:
    """seed_by_name=true moves every draw of a seed: pairing such a row with one that ran without it is named;
    evaluation runs (no such key) are not counted."""
    for row, task, by_name in [("ref", "train", None), ("crn", "train", True), ("ev", "eval", None)]:
        for seed in (0, 1):
            write_run(tmp_path / row, seed, 50.0 + seed, 10.0)
            config = {"task_name": task, **({} if by_name is None else {"seed_by_name": by_name})}
            (tmp_path / row / f"seed_{seed}" / ".hydra").mkdir()
            (tmp_path / row / f"seed_{seed}" / ".hydra" / "config.yaml").write_text(json.dumps(config))
    ref = str(tmp_path / "ref")
    assert seeds.main(["--collect", ref, str(tmp_path / "crn"), "--reference", ref]) == 0
    err = capsys.readouterr().err
    assert "some training runs drew by name" in err and f"{ref}: [False], crn: [True]" in err
    assert seeds.main(["--collect", ref, str(tmp_path / "ev"), "--reference", ref]) == 0
    assert "drew by name" not in capsys.readouterr().err


def test_pairing_uses_seeds_not_order(tmp_path: Path, capsys) -> None:
    """The same differences whatever order the runs are listed in; unshared seeds are left out."""
    for seed, m in [(0, 50.0), (1, 60.0), (2, 55.0)]:
        write_run(tmp_path / "ref", seed, m, 10.0)
    for seed, m in [(2, 56.0), (0, 51.0), (1, 61.0), (5, 0.0)]:
        write_run(tmp_path / "new", seed, m, 10.0)
    ref = str(tmp_path / "ref")
    assert seeds.main(["--collect", ref, str(tmp_path / "new"), "--reference", ref]) == 0
    out = capsys.readouterr().out.split("Paired on seeds")[1]
    row = next(line for line in out.splitlines() if line.startswith("| new |"))
    assert "| 3 |" in row and "+1.0 [+1.0, +1.0] better" in row  # every shared seed +1: sd 0


def test_multirun_jobs_are_grouped_by_setting_and_paired_by_seed(tmp_path: Path, capsys) -> None:
    sweep = tmp_path / "sweep"
    values = {("0", 0): 40.0, ("0", 1): 42.0, ("0.5", 0): 50.0, ("0.5", 1): 55.0}
    for i, ((p, seed), m) in enumerate(values.items()):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(
            f"- seed={seed}\n- model.slice_ratio={p}\n- trainer.max_steps=9\n"
        )
        (job / "metrics.json").write_text(json.dumps({"toy": {"mIoU": m, "num_images": 4}}))
    groups = seeds.multirun_settings(sweep)
    assert sorted(groups) == ["model.slice_ratio=0", "model.slice_ratio=0.5"]
    assert seeds.main(["--multirun", str(sweep), "--reference", "model.slice_ratio=0.5"]) == 0
    out = capsys.readouterr().out.split("Paired on seeds")[1]
    row = next(line for line in out.splitlines() if line.startswith("| model.slice_ratio=0 |"))
    assert "-11.5" in row and "| 2 |" in row  # (40-50 + 42-55) / 2


def test_steps_pair_each_setting_with_the_one_before(tmp_path: Path, capsys) -> None:
    """An ablation ladder: row i is paired against row i − 1 on their shared seeds (hand-computed)."""
    ladder = {"base": [40.0, 42.0, 41.0], "plus_a": [45.0, 46.0, 47.0], "plus_b": [45.0, 47.0, 46.0]}
    for name, values in ladder.items():
        for seed, m in enumerate(values):
            write_run(tmp_path / name, seed, m, 10.0)
    dirs = [str(tmp_path / name) for name in ladder]
    assert seeds.main(["--collect", *dirs, "--steps"]) == 0
    out = capsys.readouterr().out.split("each row against the row before it")[1]
    rows = [
        line for line in out.splitlines() if line.startswith("| base → ") or line.startswith("| plus_a → ")
    ]
    assert [r.split(" | ")[0] for r in rows] == ["| base → plus_a", "| plus_a → plus_b"]
    # base → plus_a: d = 5, 4, 6 → mean 5, sd 1, half-width t(0.975, 2) · 1 / √3 = 4.303 / 1.732 = 2.48
    assert "+5.0 [+2.5, +7.5] better" in rows[0]
    # plus_a → plus_b: d = 0, +1, −1 → mean 0: no difference
    assert "+0.0 [-2.5, +2.5] no difference" in rows[1]


def test_a_seed_interrupted_mid_run_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed run leaves checkpoints but no metrics.json: the seed is run again from the start, with
    overwrite=true (the run directory guard refuses a folder holding another run's checkpoints)."""
    calls = []

    def fake_run(cmd, env, log):
        calls.append(cmd)
        return 0, 1.0

    monkeypatch.setattr(seeds, "run_counting_cpu", fake_run)
    seeds.run_seed("train", ["a=1"], 0, tmp_path, 1, False)
    (tmp_path / "seed_1" / "checkpoints").mkdir(parents=True)
    seeds.run_seed("train", ["a=1"], 1, tmp_path, 1, False)
    assert "overwrite=true" not in calls[0]
    assert calls[1][calls[1].index("seed=1") + 1] == "overwrite=true"
    seeds.run_seed("train", ["seed=0"], 2, tmp_path, 1, False, seed_key="data.order_seed")
    assert "data.order_seed=2" in calls[2] and "seed=2" not in calls[2] and calls[2].count("seed=0") == 1


def test_cpu_seconds_are_the_childs_own() -> None:
    """``run_counting_cpu`` reports the exit code and the child's CPU time, not the parent's."""
    import os
    import sys

    burn = (
        "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nraise SystemExit(3)"
    )
    with open(os.devnull, "w") as log:
        code, cpu = seeds.run_counting_cpu([sys.executable, "-c", burn], dict(os.environ), log)
    assert code == 3
    assert 0.3 <= cpu < 5.0


def test_collect_adds_cpu_seconds_where_runs_have_them(tmp_path: Path, capsys) -> None:
    for seed, cpu in [(0, "100.0"), (1, "140.0")]:
        write_run(tmp_path / "a", seed, 50.0, 10.0)
        (tmp_path / "a" / f"seed_{seed}" / "seeds_cpu.txt").write_text(cpu + "\n")
    write_run(tmp_path / "b", 0, 60.0, 20.0)  # an older run without the file
    assert seeds.main(["--collect", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| run | seeds | mIoU | novel_mIoU | CPU-s / run |"
    assert out[2] == "| a | 2 | 50.0 ± 0.0 | 10.0 ± 0.0 | 120 ± 28 |"
    assert out[3] == "| b | 1 | 60.0 ± 0.0 | 20.0 ± 0.0 | – |"


def test_seeds_needed_matches_cohens_table() -> None:
    """Paired t, two-sided 0.05, 80 % power (Cohen 1988; G*Power): d = Δ/σ_d = 1 → 10, 0.8 → 15, 0.5 → 34,
    0.2 → 199; only the ratio matters."""
    from mrovseg.benchmarking.seed_stats import seeds_needed

    assert [seeds_needed(d, 1.0) for d in (1.0, 0.8, 0.5, 0.2)] == [10, 15, 34, 199]
    assert seeds_needed(4.0, 4.0) == 10 and seeds_needed(-2.0, 4.0) == 34  # the sign does not matter
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(0.01, 1.0, max_seeds=1000) is None


def test_paired_power_matches_a_simulation() -> None:
    """40,000 simulated 6-seed comparisons with true Δ = 1.5, σ_d = 2: the share of verdicts other than
    "no difference" is the noncentral-t power (binomial standard error ≈ 0.0023)."""
    import numpy as np
    from scipy import stats

    from mrovseg.benchmarking.seed_stats import paired_power

    n, diffs = 6, np.random.default_rng(0).normal(1.5, 2.0, size=(40_000, 6))
    t = diffs.mean(1) / (diffs.std(1, ddof=1) / n**0.5)
    simulated = float((np.abs(t) > stats.t.ppf(0.975, n - 1)).mean())
    assert paired_power(1.5, 2.0, n) == pytest.approx(simulated, abs=0.01)
    assert paired_power(0.0, 2.0, n) == pytest.approx(0.05, abs=1e-9)  # no effect: the test's level
    with pytest.raises(ValueError, match="n must be >= 2"):
        paired_power(1.0, 1.0, 1)


def test_smallest_effect_is_the_inverse_of_the_power() -> None:
    from mrovseg.benchmarking.seed_stats import paired_power, seeds_needed, smallest_effect

    delta = smallest_effect(2.0, 5)
    assert paired_power(delta, 2.0, 5) == pytest.approx(0.8, abs=1e-5)
    assert seeds_needed(delta * 1.0001, 2.0) == 5 and seeds_needed(delta * 0.99, 2.0) == 6
    assert smallest_effect(1.0, 10) == pytest.approx(1.0, abs=0.01)  # Cohen's d = 1 at 10 seeds


def test_power_table_paired_and_unpaired(tmp_path: Path, capsys) -> None:
    """Paired: σ_d of the per-seed differences (+1, +3, +2, +2: sd 0.8165); unpaired (no reference):
    √2 × the setting's std (values 50, 52, 54, 56: sd 2.582 → 3.651)."""
    from mrovseg.benchmarking.seed_stats import seeds_needed, smallest_effect

    for seed, m in enumerate([50.0, 52.0, 54.0, 56.0]):
        write_run(tmp_path / "ref", seed, m, 10.0)
    for seed, d in enumerate([1.0, 3.0, 2.0, 2.0]):
        write_run(tmp_path / "new", seed, 50.0 + 2 * seed + d, 10.0)
    ref = str(tmp_path / "ref")
    assert seeds.main(["--collect", ref, str(tmp_path / "new"), "--reference", ref, "--power", "1", "2"]) == 0
    out = capsys.readouterr().out.split("What the seeds can decide")[1]
    row = next(line for line in out.splitlines() if line.startswith("| new | mIoU |"))
    sd = statistics.stdev([1.0, 3.0, 2.0, 2.0])
    expected = f"| new | mIoU | 4 | 0.8 | {smallest_effect(sd, 4):.1f} | {seeds_needed(1, sd)} | {seeds_needed(2, sd)} |"
    assert row == expected
    assert "| ref |" not in out  # the reference is not compared with itself
    assert seeds.main(["--collect", ref, "--power", "4"]) == 0
    out = capsys.readouterr().out.split("What the seeds can decide")[1]
    sd = statistics.stdev([50.0, 52.0, 54.0, 56.0]) * 2**0.5
    assert f"| ref | mIoU | 4 | 3.7 | {smallest_effect(sd, 4):.1f} | {seeds_needed(4, sd)} |" in out
    with pytest.raises(SystemExit, match="expected a positive effect size"):
        seeds.main(["--collect", ref, "--power", "-1"])
