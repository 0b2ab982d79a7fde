"""A second ``train`` into a run directory that holds checkpoints: refused unless it resumes or overwrites.

And a resumed or overwritten run never leaves the earlier run's ``metrics.json`` beside its own
checkpoints (it is deleted when the run starts; the run writes its own when it ends).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mrovseg.train
from mrovseg.train import train
from mrovseg.training.preflight import RunDirectoryError, prepare_run_directory
from tests.helpers import composed, describe, run_entry_point

REFUSED = (
    r"already holds the checkpoints of an earlier run \(checkpoints/last\.ckpt\)"
    r".*ckpt_path=last.*overwrite=true"
)


def _earlier_run(run: Path, hpc: bool = False) -> None:
    """What an earlier run leaves: checkpoints (their bytes do not matter here) and its metrics."""
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"earlier")
    (run / "metrics.json").write_text('{"earlier": {}}')
    if hpc:
        (run / "hpc_ckpt_1.ckpt").write_bytes(b"slurm")


def _no_build(*args, **kwargs):
    raise AssertionError("the model was built although the run directory was refused")


def test_second_run_is_refused_before_anything_is_built(tmp_path: Path, monkeypatch) -> None:
    _earlier_run(tmp_path)
    monkeypatch.setattr(mrovseg.train, "build", _no_build)
    with composed("train", tmp_path) as cfg, pytest.raises(RunDirectoryError, match=REFUSED):
        train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == b"earlier"  # untouched
    assert (tmp_path / "metrics.json").is_file()


def test_a_checkpoint_of_another_run_does_not_make_a_resume(tmp_path: Path) -> None:
    _earlier_run(tmp_path / "run")
    other = tmp_path / "other.ckpt"
    other.write_bytes(b"x")
    with composed("train", tmp_path / "run", [f"ckpt_path={other}"]) as cfg, pytest.raises(RunDirectoryError):
        prepare_run_directory(cfg)


@pytest.mark.parametrize("ckpt", ["last", "INSIDE", "SLURM"])
def test_resuming_is_allowed_and_removes_the_earlier_metrics(tmp_path: Path, ckpt: str) -> None:
    _earlier_run(tmp_path, hpc=ckpt == "SLURM")
    override = {
        "last": ["ckpt_path=last"],
        "INSIDE": [f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"],
        "SLURM": [],  # Lightning resumes from hpc_ckpt_<n>.ckpt when ckpt_path is unset
    }[ckpt]
    with composed("train", tmp_path, override) as cfg:
        prepare_run_directory(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "metrics.json").exists()


def test_overwrite_deletes_the_earlier_checkpoints_and_metrics(tmp_path: Path) -> None:
    _earlier_run(tmp_path, hpc=True)
    (tmp_path / "checkpoints" / "best.ckpt").write_bytes(b"earlier")
    (tmp_path / "checkpoints" / "last.ckpt.tmp").write_bytes(b"half-written")
    with composed("train", tmp_path, ["overwrite=true"]) as cfg:
        prepare_run_directory(cfg)
    assert not list(tmp_path.rglob("*.ckpt*")) and not (tmp_path / "metrics.json").exists()
    with composed("train", tmp_path, ["overwrite=true", "ckpt_path=last"]) as cfg:
        _earlier_run(tmp_path)
        with pytest.raises(RunDirectoryError, match="pass one of the two"):
            prepare_run_directory(cfg)


def test_nothing_to_guard_without_training_or_in_a_fast_dev_run(tmp_path: Path) -> None:
    _earlier_run(tmp_path)
    for override in (["train=false"], ["debug=fast_dev_run"]):
        with composed("train", tmp_path, override) as cfg:
            prepare_run_directory(cfg)
    assert (tmp_path / "metrics.json").is_file()


def test_overwritten_run_that_stops_early_leaves_nothing_of_the_earlier_run(tmp_path: Path) -> None:
    """A real 2-step run, then a run with overwrite=true that crashes after its first step: only its
    own last.ckpt is left (step 1), no best.ckpt or metrics.json of the first run."""
    quick = ["test=true", "logger={}", "callbacks.latest_checkpoint.every_n_train_steps=1"]
    with composed("train", tmp_path, quick) as cfg:
        train(cfg)
    assert {p.name for p in (tmp_path / "checkpoints").iterdir()} == {"last.ckpt", "best.ckpt"}
    assert (tmp_path / "metrics.json").is_file()
    crash = ["+callbacks.crash._target_=tests.helpers.CrashAtStep", "+callbacks.crash.step=1"]
    with composed("train", tmp_path, [*quick, *crash, "overwrite=true"]) as cfg, pytest.raises(RuntimeError):
        train(cfg)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.ckpt"]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 1
    assert not (tmp_path / "metrics.json").exists()


def test_cli_message_of_a_second_run(tmp_path: Path) -> None:
    _earlier_run(tmp_path)
    proc = run_entry_point("mrovseg.train", ["clip.pretrained=null", f"hydra.run.dir={tmp_path}"])
    assert proc.returncode != 0, describe(proc)
    assert "RunDirectoryError" in proc.stderr and "overwrite=true" in proc.stderr, describe(proc)
    assert "Restoring states" not in proc.stderr + proc.stdout  # stopped before Lightning started
