"""``scripts/benchmark.py`` on the toy CLIP: report fields, sliding-window counts, batch search, memory.

The script is not a package module, so it is loaded from its file. Everything runs on the CPU with
the tests' toy CLIP at 64² / 128×64 (a few seconds); the CUDA search path is exercised with a fake
``try_batch`` that raises ``torch.cuda.OutOfMemoryError``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch

from mrovseg.constants import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "benchmark.py"


def _load_script() -> ModuleType:
    name = "mrovseg_benchmark_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while the class is created
    spec.loader.exec_module(module)
    return module


bench = _load_script()


def test_toy_report_fields(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["--models", "toy", "--mode", "all", "--ratios", "0.5", "--sizes", "64x64", "128x64"]
    argv += ["--batch-search", "--max-batch", "2", "--repeats", "1", "--warmup", "0", "--json", str(out)]
    report = bench.main(argv)

    (row,) = report.rows  # the forward table (one ratio)
    assert row.model == "toy" and row.input_side == 64 and row.trunk_calls == 1
    assert row.params_total_m > row.params_no_text_m > row.params_trainable_m > 0
    assert row.gflops > row.trunk_gflops > 0
    assert row.latency_s > 0 and row.trunk_latency_s > 0

    forward = [r for r in report.throughput if r.mode == "forward"]
    assert [(r.batch, r.batch_limit) for r in forward] == [(1, ""), (2, "cap 2")]
    inference = {(r.width, r.height, r.batch): r for r in report.throughput if r.mode == "inference"}
    # 64² is one window; the 2:1 image 128×64 needs 3 windows of 64² (stride 42) and is capped at batch 2
    assert sorted(inference) == [(64, 64, 1), (128, 64, 1), (128, 64, 2)]
    assert inference[64, 64, 1].windows == 1 and inference[128, 64, 1].windows == 3
    assert inference[128, 64, 2].batch_limit == "cap 2"
    assert inference[128, 64, 1].gflops_per_image == pytest.approx(3 * inference[64, 64, 1].gflops_per_image)
    for r in report.throughput:
        assert r.params_total_m > 0 and r.gflops_per_image > 0
        assert r.latency_s > 0 and r.images_per_s > 0 and len(r.runs) == 1
        assert r.peak_mem_mib > 0 and r.peak_mem_delta_mib >= 0 and "RSS" in r.mem_kind
        assert r.precision == "fp32" and r.window == 64
    assert forward[1].images_per_s == pytest.approx(2 / forward[1].latency_s)
    assert inference[128, 64, 2].images_per_s == pytest.approx(1 / inference[128, 64, 2].latency_s)

    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 1 and len(saved["throughput"]) == len(report.throughput)
    for key in ("date", "device_name", "torch", "open_clip", "cuda", "threads", "peak_rss_whole_run_mib"):
        assert key in saved["meta"]


def test_forward_mode_keeps_the_table_and_options() -> None:
    report = bench.main(["--models", "toy", "--ratios", "0", "1", "--no-latency", "--size", "64"])
    assert [r.ratio for r in report.rows] == [0.0, 1.0]
    assert [r.trunk_calls for r in report.rows] == [1, 2]
    assert report.throughput == [] and all(r.latency_s is None for r in report.rows)
    assert "| toy | 0 | 64² | 1×32² |" in bench.markdown_table(report.rows)


@pytest.mark.parametrize(
    ("size", "window", "expected"),
    [
        ((640, 640), 640, 1),
        ((2048, 1024), 640, 10),
        ((2048, 1024), 644, 10),
        ((128, 64), 64, 3),
        ((32, 32), 64, 1),
    ],
)
def test_count_windows(size: tuple[int, int], window: int, expected: int) -> None:
    assert bench.count_windows(*size, window, 1 / 3) == expected


def test_parse_size() -> None:
    assert bench.parse_size("2048x1024") == (2048, 1024)
    assert bench.parse_size("640×480") == (640, 480)
    with pytest.raises(Exception, match="WIDTHxHEIGHT"):
        bench.parse_size("640")


def _stat(mib: float) -> object:
    return bench.MemoryStat(peak=int(mib * bench.MIB), delta=int(mib * bench.MIB), kind="fake")


def test_batch_search_cuda_stops_at_oom() -> None:
    tried: list[int] = []

    def try_batch(b: int) -> object:
        tried.append(b)
        if b >= 16:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return _stat(100 * b)

    search = bench.search_max_batch(try_batch, 1024, torch.device("cuda"), _stat(100))
    assert (search.max_batch, search.limit) == (8, "OOM at 16") and tried == [2, 4, 8, 16]
    assert search.trials[16] is None

    def other_error(b: int) -> object:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        bench.search_max_batch(other_error, 8, torch.device("cuda"), _stat(100))


def test_batch_search_cpu_cap_and_ram_budget() -> None:
    tried: list[int] = []

    def try_batch(b: int) -> object:
        tried.append(b)
        return _stat(100 * b)

    search = bench.search_max_batch(try_batch, 6, torch.device("cpu"), _stat(100), available=lambda: 2**40)
    assert (search.max_batch, search.limit, tried) == (6, "cap 6", [2, 4, 6])

    tried.clear()  # 1 GiB available × 0.75: batch 4 (predicted 400 MiB) fits, batch 8 (800 MiB) does not
    search = bench.search_max_batch(try_batch, 8, torch.device("cpu"), _stat(100), 0.75, lambda: 2**30)
    assert search.max_batch == 4 and search.limit.startswith("RAM budget at 8") and tried == [2, 4]

    search = bench.search_max_batch(try_batch, 1, torch.device("cpu"), _stat(100))
    assert (search.max_batch, search.limit) == (1, "cap 1")


def test_peak_memory_cpu_sees_a_temporary_allocation() -> None:
    mem = bench.PeakMemory(torch.device("cpu"))
    with mem:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        time.sleep(0.05)
        del x
    assert mem.stat is not None and mem.stat.delta > 32 * bench.MIB
