"""The default experiment (`python -m mrovseg.train`, no arguments) end to end.

The fast test runs the same command with a fast_dev_run-sized budget; the slow one runs the full
default experiment and checks the metrics it prints against the ranges measured on the dev box
(BENCHMARKS.md, "Default experiment").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mrovseg.constants import ASSETS_DIR

REPO = Path(__file__).resolve().parents[1]
KEYS = ("mIoU", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU")


def _run_train(tmp_path: Path, *overrides: str, timeout: int) -> tuple[str, dict]:
    env = {**os.environ, "MROVSEG_LOG_DIR": str(tmp_path / "outputs")}
    cmd = [sys.executable, "-m", "mrovseg.train", f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics_file = tmp_path / "run" / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return proc.stdout, metrics


def _printed(stdout: str) -> dict[str, float]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("[toy]"))
    return {k: float(v) for k, v in re.findall(r"(\w+) (-?\d+\.\d+)", line)}


@pytest.mark.skipif(not (ASSETS_DIR / "toy_clip/toy-vit-p4-32.pt").exists(), reason="toy CLIP not shipped")
def test_default_command_small_budget(tmp_path: Path) -> None:
    """The default command with its shipped CLIP, a few steps and a few images: runs and reports."""
    stdout, metrics = _run_train(
        tmp_path,
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "data.num_val=2",
        "data.num_test=2",
        "callbacks.rich_progress_bar=null",
        "trainer.enable_progress_bar=false",
        timeout=300,
    )
    printed = _printed(stdout)
    assert set(KEYS) <= set(printed)
    assert set(KEYS) <= set(metrics["toy"])
    assert metrics["toy"]["num_images"] == 2
    assert len(metrics["toy"]["per_class_iou"]) == 31
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_full_default_experiment(tmp_path: Path) -> None:
    """The full default experiment reaches the measured quality (ranges from BENCHMARKS.md)."""
    stdout, metrics = _run_train(tmp_path, "trainer.enable_progress_bar=false", timeout=1800)
    printed = _printed(stdout)
    toy = metrics["toy"]
    for key in KEYS:
        assert printed[key] == pytest.approx(toy[key], abs=0.01)
    assert toy["num_images"] == 512
    assert MIN_MIOU <= toy["mIoU"] <= MAX_MIOU
    assert toy["base_mIoU"] >= MIN_BASE
    assert toy["novel_mIoU"] >= MIN_NOVEL_SHARE * toy["base_mIoU"]
    assert toy["small_mIoU"] >= MIN_SMALL


# Bounds outside the spread the dev box measured on the default (the lean recipe on the balanced split, BENCHMARKS.md
# "The lab, seventh session"): seeds 0-9, single-threaded, 2026-12-05 (commits 516f570 and e2b7d5c, the same training
# path): mIoU 65.6 ± 2.7 (lowest 59.7, seed 7), base 67.1 ± 2.4 (lowest 62.3), small 30.7 ± 2.5 (lowest 26.5),
# novel/base 0.78-0.94. Seed 42 at 2 threads (what this test runs; `make train`, 2026-12-05): mIoU 65.14, base 66.05,
# novel 61.32 (0.93 of base), small 30.65. A run on another machine or torch version is another draw of its seed, so
# the lower bounds sit about 3 standard deviations under the mean (the novel share: the 70 % of base); the
# upper one says the toy world is not solved (the lab must stay able to measure gains). On an AVX2-only AMD EPYC
# (eighth session, same code): seeds 0-5 mIoU 65.8 ± 2.2 (lowest 62.9), small lowest 29.3, novel/base 0.87-0.94;
# seed 42 at 2 threads mIoU 67.17, base 67.83, novel 64.42, small 33.41 — inside the same bounds.
MIN_MIOU = 57.0
MAX_MIOU = 85.0
MIN_BASE = 59.0
MIN_NOVEL_SHARE = 0.7  # novel mIoU / base mIoU
MIN_SMALL = 23.0
