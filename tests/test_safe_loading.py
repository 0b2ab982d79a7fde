"""Checkpoints are read with ``torch.load(weights_only=True)``: a file whose pickle carries code is refused
by predict, eval and ``Segmenter.from_checkpoint`` before the code runs (issue 28, item 1).

The hostile file is a real checkpoint (a 0.1 fixture) with one extra object whose ``__reduce__`` writes a
marker file when unpickled; a control load with ``weights_only=False`` shows that the payload works.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrovseg.constants import REPO_ROOT
from mrovseg.eval import evaluate
from mrovseg.serving.segmenter import Segmenter
from mrovseg.training.checkpoint import UnsafeCheckpointError, read_checkpoint
from mrovseg.training.checkpoint_convert import convert_checkpoint, plain_data
from tests.helpers import composed, describe, run_entry_point

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "checkpoints_0_1" / "mrovseg.ckpt"


class Payload:
    """Unpickled, writes ``marker`` (``exec`` of a one-line script)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    """A valid checkpoint plus a payload that writes ``marker`` when the file is unpickled."""
    ckpt = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    ckpt["callbacks"] = {"Innocent": Payload(marker)}
    torch.save(ckpt, path)
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    return hostile_checkpoint(tmp_path / "hostile.ckpt", marker), marker


def assert_clear(message: str, ckpt: Path) -> None:
    assert f"Refused to load checkpoint {ckpt}" in message
    assert "'exec'" in message and "run code" in message
    assert f"python -m mrovseg.training.checkpoint_convert {ckpt} <new.ckpt>" in message


def test_the_payload_runs_when_loaded_unsafely(tmp_path: Path) -> None:  # the control
    marker = tmp_path / "CONTROL"
    torch.load(hostile_checkpoint(tmp_path / "h.ckpt", marker), map_location="cpu", weights_only=False)
    assert marker.read_text() == "pwned"


def test_read_checkpoint_refuses_it(hostile: tuple[Path, Path]) -> None:
    ckpt, marker = hostile
    with pytest.raises(UnsafeCheckpointError) as err:
        read_checkpoint(ckpt)
    assert_clear(str(err.value), ckpt)
    assert not marker.exists()


def test_segmenter_from_checkpoint_refuses_it(hostile: tuple[Path, Path]) -> None:
    ckpt, marker = hostile
    with pytest.raises(UnsafeCheckpointError) as err:
        Segmenter.from_checkpoint(ckpt)
    assert_clear(str(err.value), ckpt)
    assert not marker.exists()


def test_eval_refuses_it(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, marker = hostile
    with (
        composed("eval", tmp_path / "eval", [f"ckpt_path={ckpt}"]) as cfg,
        pytest.raises(UnsafeCheckpointError) as err,
    ):
        evaluate(cfg)
    assert_clear(str(err.value), ckpt)
    assert not marker.exists() and not (tmp_path / "eval" / "metrics.json").exists()


def test_predict_command_refuses_it(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, marker = hostile
    image = tmp_path / "scene.png"
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(image)
    out = tmp_path / "out"
    proc = run_entry_point(
        "mrovseg.predict", [f"ckpt_path={ckpt}", f"inputs={image}", "vocabulary=toy", f"output_dir={out}"]
    )
    assert proc.returncode != 0, describe(proc)
    assert_clear(re.sub(r"\s+", " ", proc.stderr), ckpt)
    assert not marker.exists()
    assert not out.exists() or not any(out.iterdir())


def test_a_damaged_file_is_named_as_such(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"Could not read checkpoint .*bad\.ckpt") as err:
        read_checkpoint(bad)
    assert not isinstance(err.value, UnsafeCheckpointError)


def test_a_file_converts_without_running_its_code_and_then_loads(
    hostile: tuple[Path, Path], tmp_path: Path
) -> None:
    """The converter's unpickler builds allow-listed types only: the payload (``exec``) becomes an inert
    placeholder that is dropped, while OmegaConf and argparse containers come through as plain data."""
    import argparse

    from omegaconf import OmegaConf

    ckpt, marker = hostile
    payload = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    payload["callbacks"] = {"Innocent": Payload(marker)}
    payload["hyper_parameters"] = {"cfg": OmegaConf.create({"a": [1, "x"]}), "ns": argparse.Namespace(k=2)}
    torch.save(payload, ckpt)
    clean = tmp_path / "clean.ckpt"
    dropped = convert_checkpoint(ckpt, clean)
    assert not marker.exists()  # no code of the file ran, not even during the conversion
    assert dropped == ["callbacks.Innocent (__builtin__.exec, not built)"]  # the pickle's protocol-2 name
    loaded, original = read_checkpoint(clean), torch.load(FIXTURE, map_location="cpu", weights_only=True)
    assert not marker.exists() and loaded["callbacks"] == {}
    assert loaded["hyper_parameters"] == {"cfg": {"a": [1, "x"]}, "ns": {"k": 2}}
    assert loaded["mrovseg_config"] == original["mrovseg_config"]
    assert loaded["state_dict"].keys() == original["state_dict"].keys()
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in original["state_dict"].items())
    with pytest.raises(FileExistsError):
        convert_checkpoint(ckpt, clean)


def test_conversion_keeps_plain_data_and_drops_objects() -> None:
    import enum

    from omegaconf import OmegaConf

    class Colour(enum.IntEnum):
        RED = 1

    dropped: list[str] = []
    node = {"w": torch.ones(2), "cfg": OmegaConf.create({"a": [1, "x"]}), "cb": {"obj": Payload(Path("x"))}}
    node.update(t=(1, 2.0, None), np=[np.float32(1.5), np.arange(3)], enum=Colour.RED)
    out = plain_data(node, dropped=dropped)
    assert out["cfg"] == {"a": [1, "x"]} and type(out["cfg"]) is dict and out["t"] == (1, 2.0, None)
    assert out["cb"] == {} and torch.equal(out["w"], torch.ones(2)) and "enum" not in out
    assert out["np"][0] == 1.5 and type(out["np"][0]) is float and torch.equal(out["np"][1], torch.arange(3))
    assert dropped == [f"cb.obj ({__name__}.Payload)", f"enum ({__name__}.{Colour.__qualname__})"]


def test_checkpoints_of_the_package_load_safely() -> None:
    for path in sorted(FIXTURE.parent.glob("*.ckpt")):
        assert "state_dict" in read_checkpoint(path)
    sources = [p for p in (REPO_ROOT / "src").rglob("*.py") if p.name != "checkpoint_convert.py"]
    sources += list((REPO_ROOT / "scripts").rglob("*.py"))
    unsafe = [str(p) for p in sources if "weights_only=False" in p.read_text()]
    assert not unsafe, unsafe
    convert = (REPO_ROOT / "src" / "mrovseg" / "training" / "checkpoint_convert.py").read_text()
    assert convert.count("weights_only=False") == 1 and "pickle_module=_inert_pickle_module()" in convert
