"""``precision=`` on predict, eval, the demo and ``Segmenter.from_checkpoint`` reaches the model (the dtype
seen inside CLIP), ``auto`` follows the device's flags and predict's JSON says what was used."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from mrovseg.predict import predict
from mrovseg.serving import precision as prec
from mrovseg.serving import segmenter as segmenter_module
from mrovseg.serving.segmenter import Segmenter


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[torch.dtype]]:
    """Output dtypes of CLIP's first vision and text MLPs of every model prepared from now on."""
    dtypes: dict[str, set[torch.dtype]] = {"vision": set(), "text": set()}
    inner = prec.prepare_model

    def spy(model: torch.nn.Module, precision: str) -> torch.nn.Module:
        clip = model.backbone.clip
        for key, block in (
            ("vision", clip.visual.transformer.resblocks[0]),
            ("text", clip.transformer.resblocks[0]),
        ):
            block.mlp.c_fc.register_forward_hook(lambda m, i, out, key=key: dtypes[key].add(out.dtype))
        return inner(model, precision)

    monkeypatch.setattr(prec, "prepare_model", spy)  # eval's import
    monkeypatch.setattr(segmenter_module, "prepare_model", spy)  # the Segmenter's
    monkeypatch.setenv("MROVSEG_CACHE", "off")  # the text tower runs every time
    return dtypes


@pytest.mark.parametrize(
    ("setting", "flags", "used"),
    [
        ("bf16", None, "bf16"),
        ("fp32", None, "fp32"),
        ("auto", {"avx2"}, "fp32"),
        ("auto", {"amx_bf16"}, "bf16"),
    ],
)
def test_predict_runs_and_reports_the_precision(
    make_predict_cfg: Callable[..., DictConfig],
    image_dir: Path,
    seen: dict,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    flags: set[str] | None,
    used: str,
) -> None:
    if flags is not None:
        monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset(flags))
    cfg = make_predict_cfg(
        f"inputs={image_dir / 'scene_a.png'}", "vocabulary=[cat,dog]", f"precision={setting}"
    )
    assert predict(cfg).ok == ["scene_a"]
    meta = json.loads((Path(cfg.output_dir) / "scene_a.json").read_text())
    assert meta["precision"] == used and meta["precision_setting"] == setting
    dtype = torch.bfloat16 if used == "bf16" else torch.float32
    assert seen == {"vision": {dtype}, "text": {dtype}}


def test_predict_fp32_equals_the_api_fp32(
    make_predict_cfg: Callable[..., DictConfig], image_dir: Path, tiny_ckpt: Path
) -> None:
    from mrovseg.data.image_io import load_label

    cfg = make_predict_cfg(f"inputs={image_dir / 'scene_a.png'}", "vocabulary=[cat,dog]", "precision=fp32")
    predict(cfg)
    api = Segmenter.from_checkpoint(tiny_ckpt, short_side=None, precision="fp32")
    result = api(image_dir / "scene_a.png", ["cat", "dog"])
    assert api.precision == "fp32"
    assert np.array_equal(result.labels, load_label(Path(cfg.output_dir) / "scene_a_labels.png"))
    meta = json.loads((Path(cfg.output_dir) / "scene_a.json").read_text())
    assert meta["class_scores"] == result.class_scores.tolist()


def test_from_checkpoint_refuses_a_bad_precision_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="int8 is not offered"):
        Segmenter.from_checkpoint(tmp_path / "missing.ckpt", precision="int8")


@pytest.mark.parametrize(("setting", "trainer_precision"), [(None, "32-true"), ("bf16", "bf16-mixed")])
def test_eval_runs_in_the_precision(
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    seen: dict,
    monkeypatch: pytest.MonkeyPatch,
    setting: str | None,
    trainer_precision: str,
) -> None:
    from mrovseg.eval import evaluate
    from tests.helpers import OVERFIT_MODEL, composed, tiny_trained_run

    run, _ = tiny_trained_run(tmp_path_factory.getbasetemp() / "trained")
    overrides = [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"clip.pretrained={run / 'clip.pt'}"]
    overrides += [*OVERFIT_MODEL, "debug=fast_dev_run"]
    if setting is not None:
        overrides.append(f"precision={setting}")
    with composed("eval", tmp_path, overrides) as cfg:
        results = evaluate(cfg)
        assert cfg.trainer.precision == trainer_precision
    assert results["toy"]["num_images"] == 1
    if setting is None:  # the trainer's own precision; the model is not prepared at all
        assert seen == {"vision": set(), "text": set()}
    else:
        assert seen == {"vision": {torch.bfloat16}, "text": {torch.bfloat16}}


def test_demo_passes_the_precision(tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gradio")
    from mrovseg.demo.app import build_from_config
    from tests.predict.conftest import compose_config

    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    cfg = compose_config(
        "demo",
        [
            f"ckpt_path={tiny_ckpt}",
            "short_side=null",
            "device=cpu",
            "demo.examples=[]",
            f"output_dir={tmp_path}",
        ],
        tmp_path / "hydra",
    )
    assert cfg.precision == "auto"
    _, session = build_from_config(cfg)
    assert session.segmenter.precision == "bf16" and session.extra["precision"] == "bf16"
