"""``checkpoints/last.ckpt`` is the latest state, written every N steps: a killed run resumes from it.

The fast test crashes a tiny in-process run; the slow one SIGKILLs a ``python -m mrovseg.train``
child after its periodic checkpoint and resumes it with ``ckpt_path=last`` to the same final step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mrovseg.constants import REPO_ROOT
from mrovseg.train import train
from mrovseg.training.callbacks.latest_checkpoint import LatestCheckpoint
from tests.helpers import TINY, composed, subprocess_env
from tests.killable import read_records

LR = 1e-2
MAX_STEPS = 6

#: One 1-image batch per step, no validation or test, no logger: seconds per run.
COMMON = [
    "data.num_train=1",
    "data.batch_size=1",
    f"module.optimizer.lr={LR}",
    f"trainer.max_steps={MAX_STEPS}",
    "trainer.limit_val_batches=0",
    "test=false",
    "logger={}",
    "callbacks.latest_checkpoint.every_n_train_steps=3",
    "callbacks.latest_checkpoint.every_minutes=null",
]


def poly_lr(step: int) -> float:
    """The module's schedule: ``lr · (1 − step / max_steps)^0.9``."""
    return LR * max(0.0, 1 - step / MAX_STEPS) ** 0.9


def _ckpt(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def test_interval_options_are_checked() -> None:
    with pytest.raises(ValueError, match="both are off"):
        LatestCheckpoint("x", every_n_train_steps=None, every_minutes=None)
    with pytest.raises(ValueError, match="every_minutes=-1"):
        LatestCheckpoint("x", every_n_train_steps=10, every_minutes=-1)


def test_last_ckpt_is_the_periodic_state_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    record = tmp_path / "schedule.jsonl"
    rec = ["+callbacks.record._target_=tests.killable.RecordSchedule", f"+callbacks.record.path={record}"]
    crash = ["+callbacks.crash._target_=tests.helpers.CrashAtStep", "+callbacks.crash.step=4"]
    with composed("train", run, [*COMMON, *rec, *crash]) as cfg, pytest.raises(RuntimeError, match="crash"):
        train(cfg)
    assert _ckpt(run)["global_step"] == 3  # the periodic write, not a "best" one
    with composed("train", run, [*COMMON, *rec, "ckpt_path=last"]) as cfg:
        train(cfg)
    final = _ckpt(run)
    assert final["global_step"] == MAX_STEPS and final["lr_schedulers"][0]["last_epoch"] == MAX_STEPS
    starts = [r for r in read_records(record) if "start" in r]
    assert starts == [{"start": 0, "last_epoch": 0}, {"start": 3, "last_epoch": 3}]


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_same_final_step(tmp_path: Path) -> None:
    run, record, marker = tmp_path / "run", tmp_path / "schedule.jsonl", tmp_path / "stalled"
    args = [*TINY, *COMMON, "clip.pretrained=null", f"hydra.run.dir={run}"]
    args += ["+callbacks.record._target_=tests.killable.RecordSchedule", f"+callbacks.record.path={record}"]
    stall = ["+callbacks.stall._target_=tests.killable.StallAtStep", "+callbacks.stall.step=4"]
    stall.append(f"+callbacks.stall.marker={marker}")
    cmd = [sys.executable, "-m", "mrovseg.train", *args]
    env = subprocess_env()
    proc = subprocess.Popen(
        [*cmd, *stall], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), (
        proc.stderr.read().decode() if proc.poll() is not None else "no stall within 300 s"
    )
    os.kill(proc.pid, signal.SIGKILL)  # after step 4; the periodic checkpoint is step 3
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed = _ckpt(run)
    assert killed["global_step"] == 3 and killed["lr_schedulers"][0]["last_epoch"] == 3

    done = subprocess.run([*cmd, "ckpt_path=last"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    final = _ckpt(run)
    assert final["global_step"] == MAX_STEPS and final["lr_schedulers"][0]["last_epoch"] == MAX_STEPS

    records = read_records(record)
    starts = [r for r in records if "start" in r]
    assert starts == [{"start": 0, "last_epoch": 0}, {"start": 3, "last_epoch": 3}]
    lrs = [(r["step"], r["lr"]) for r in records if "step" in r]
    # killed run: steps 1-4; resumed run: steps 4-6 again from step 3's state, on the same poly schedule
    assert [s for s, _ in lrs] == [1, 2, 3, 4, 4, 5, 6]
    for step, lr in lrs:
        assert lr == pytest.approx(poly_lr(step), rel=1e-6, abs=1e-12), step


class _FakeStrategy:
    def broadcast(self, value: object) -> object:
        return value

    def barrier(self, name: str | None = None) -> None:
        pass


class _FakeTrainer:
    """What ``LatestCheckpoint`` reads from a trainer; ``save_checkpoint`` writes the step."""

    def __init__(self) -> None:
        self.global_step, self.fast_dev_run, self.sanity_checking, self.is_global_zero = 0, False, False, True
        self.strategy = _FakeStrategy()

    def save_checkpoint(self, path: str, weights_only: bool = False) -> None:
        Path(path).write_text(str(self.global_step))


def test_written_by_minutes_through_a_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("mrovseg.training.callbacks.latest_checkpoint.time.monotonic", lambda: clock[0])
    callback = LatestCheckpoint(tmp_path, every_n_train_steps=None, every_minutes=2)
    trainer = _FakeTrainer()
    callback.on_train_start(trainer, None)
    last = tmp_path / "last.ckpt"
    for step, minutes in [(1, 1.0), (2, 2.5), (3, 3.0), (4, 4.6)]:
        trainer.global_step, clock[0] = step, 1000.0 + 60 * minutes
        callback.on_train_batch_end(trainer, None, None, None, step)
        if step == 2:
            assert last.read_text() == "2"  # 2.5 min after the start
    assert last.read_text() == "4" and not list(tmp_path.glob("*.tmp"))  # 2.1 min after step 2
    callback.on_train_end(trainer, None)  # the same step: not written again
    trainer.global_step = 5
    callback.on_train_end(trainer, None)
    assert last.read_text() == "5" and callback.last_model_path == str(last)
