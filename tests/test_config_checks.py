"""Settings of the wrong type and output folders that are files stop a run with one clear line each,
before a model is built or a checkpoint read (:mod:`mrovseg.config_checks`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import mrovseg.train
from mrovseg.config import CONF_DIR
from mrovseg.config_checks import ConfigError, check_config
from mrovseg.train import train
from tests.helpers import composed, describe, run_entry_point

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def _never(*args, **kwargs):
    raise AssertionError("work started although the config is wrong")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_passes(tmp_path: Path, experiment: str) -> None:
    for name in ("train", "eval"):
        with composed(name, tmp_path, [f"experiment={experiment}"], base=()) as cfg:
            check_config(cfg)


def test_wrong_types_give_one_line_each_before_the_model_is_built(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mrovseg.train, "build", _never)
    bad = ["trainer.max_steps=abc", "data.batch_size=0", "trainer.val_check_interval=soon", "seed=1.5"]
    with composed("train", tmp_path, bad) as cfg, pytest.raises(ConfigError) as info:
        train(cfg)
    assert str(info.value).splitlines() == [
        "seed must be an integer, got 1.5 (float).",
        "trainer.max_steps must be an integer, got 'abc' (str).",
        "data.batch_size must be at least 1, got 0.",
        "trainer.val_check_interval must be a number (a count or a fraction) or null, got 'soon' (str).",
    ]
    with composed("train", tmp_path, ["trainer.max_steps=-1", "global_batch_size=null"]) as cfg:
        check_config(cfg)  # -1 = no limit (Lightning's convention); null = as given


def test_cli_max_steps_abc_is_one_line(tmp_path: Path) -> None:
    proc = run_entry_point(
        "mrovseg.train", ["clip.pretrained=null", "trainer.max_steps=abc", f"hydra.run.dir={tmp_path}"]
    )
    assert proc.returncode != 0
    line = "ConfigError: trainer.max_steps must be an integer, got 'abc' (str)."
    assert line in proc.stderr, describe(proc)
    assert "TypeError" not in proc.stderr and not (tmp_path / "checkpoints").exists()


def test_predict_output_dir_that_is_a_file(tmp_path: Path, monkeypatch) -> None:
    from mrovseg.predict import predict
    from mrovseg.serving.segmenter import Segmenter
    from tests.predict.conftest import compose_config

    monkeypatch.setattr(Segmenter, "from_checkpoint", _never)
    file = tmp_path / "taken.txt"
    file.write_text("a file")
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    base = [f"ckpt_path={tmp_path / 'x.ckpt'}", f"inputs={image}", "vocabulary=[cat,dog]"]
    with pytest.raises(ConfigError, match=r"^output_dir=.*taken\.txt is an existing file, not a folder"):
        predict(compose_config("predict", [*base, f"output_dir={file}"], tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"cannot be created: .*taken\.txt is a file, not a folder"):
        predict(compose_config("predict", [*base, f"output_dir={file}/sub"], tmp_path / "run"))


def test_eval_and_demo_output_folders_that_are_files(tmp_path: Path, monkeypatch) -> None:
    import mrovseg.training.checkpoint as checkpoint
    from mrovseg.demo.app import build_from_config
    from mrovseg.eval import evaluate
    from tests.predict.conftest import compose_config

    monkeypatch.setattr(checkpoint, "load_module", _never)
    monkeypatch.setattr(checkpoint, "build_module", _never)
    file = tmp_path / "taken"
    file.write_text("a file")
    overrides = [f"ckpt_path={tmp_path / 'x.ckpt'}", f"paths.output_dir={file}"]
    with (
        composed("eval", tmp_path / "run", overrides) as cfg,
        pytest.raises(ConfigError, match=r"paths\.output_dir=.*taken is an existing file"),
    ):
        evaluate(cfg)
    cfg = compose_config("demo", [f"ckpt_path={tmp_path / 'x.ckpt'}", f"output_dir={file}"], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"^output_dir=.*taken is an existing file"):
        build_from_config(cfg)
