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
