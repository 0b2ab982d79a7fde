"""``scripts/gpu_report.py --device cpu --tiny`` runs end to end and writes every field of the report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from mrovseg.benchmarking.gpu_report import PRECISIONS, RECORD_KEYS, TRAIN_BATCHES, Budget, Options, attempt
from mrovseg.constants import REPO_ROOT


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"mrovseg_script_{name}", REPO_ROOT / "scripts" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_report_has_every_field(tmp_path: Path) -> None:
    switch = "model.adapter.checkpoint=true"  # a config override reaches the built model
    _load("gpu_report").main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--override", switch])
    saved = json.loads((tmp_path / "gpu_report.json").read_text())
    assert (
        saved["options"]["overrides"][-1] == switch
        and "model.adapter.dim=32" in saved["options"]["overrides"]
    )
    markdown = (tmp_path / "gpu_report.md").read_text()

    env = saved["environment"]
    for key in ("device_name", "driver", "torch", "cuda", "cudnn", "date", "git_commit", "wall_s"):
        assert key in env, key
    assert env["torch"] == torch.__version__
    for precision in PRECISIONS:  # which SDPA kernel ran, unmasked (trunk, adapter) and biased (classifier)
        kernels = env["sdpa_kernels"]["toy"][precision]
        assert kernels["unmasked"] and kernels["biased"], kernels
    info = env["models"]["toy"]
    assert info["gflops_batch1"] > 0 and info["flops_torch"] == torch.__version__

    records = saved["records"]
    assert all(set(r) == set(RECORD_KEYS) for r in records)
    got = {(r["section"], r["case"], r["precision"]) for r in records}
    batches = saved["options"]["train_batches"]
    assert batches == [1, 2]
    for precision in PRECISIONS:
        for case in ("batch 1", "max batch", "sliding window"):
            assert ("inference", case, precision) in got
        for b in batches:
            assert ("training", f"batch {b}", precision) in got
    for r in records:
        assert r["status"] == "ok", r
        assert r["latency_s"] > 0 and r["images_per_s"] > 0 and r["peak_mem_mib"] > 0
    (window,) = [r for r in records if r["case"] == "sliding window" and r["precision"] == "fp32"]
    assert window["image"] == "128×64" and "3 windows" in window["note"]
    (largest,) = [r for r in records if r["case"] == "max batch" and r["precision"] == "fp32"]
    assert largest["batch"] == 2 and "cap 2" in largest["note"]

    (numerics,) = saved["numerics"]
    assert numerics["status"] == "ok"
    assert 0 <= numerics["max_abs_logit_diff"] < numerics["logit_scale"]
    assert 0.0 <= numerics["argmax_agreement"] <= 1.0
    assert "| toy | training | batch 2 | bf16 |" in markdown and "argmax agreement" in markdown


def test_full_report_defaults() -> None:
    opts = Options()
    assert opts.models == ("vitb16", "vitl14") and opts.train_batches == TRAIN_BATCHES == (1, 8, 16)
    assert opts.device == "cuda" and opts.budget_s <= 480 and opts.large_image == (2048, 1024)


def test_attempt_records_oom_errors_and_budget() -> None:
    cpu, open_budget = torch.device("cpu"), Budget(end=float("inf"), total_end=float("inf"))

    def oom() -> dict:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def broken() -> dict:
        raise RuntimeError("shape mismatch")

    assert attempt(cpu, open_budget, oom) == {"status": "oom"}
    assert attempt(cpu, open_budget, broken)["status"].startswith("error: RuntimeError: shape mismatch")
    assert attempt(cpu, open_budget, lambda: {"latency_s": 1.0}) == {"status": "ok", "latency_s": 1.0}
    assert attempt(cpu, Budget(end=0.0, total_end=0.0), oom) == {"status": "skipped (budget)"}


@pytest.mark.parametrize("argv", [["--device", "cuda:7"]])
def test_cuda_is_required_unless_cpu(argv: list[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(SystemExit):
        _load("gpu_report").parse_args(argv)
