"""``scripts/mgca_eval_units.py``: one pass scores an MGCA checkpoint with and without semantic units, each
half exactly what ``mrovseg.eval`` gives with ``model.units.enabled=true`` / ``false``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from mrovseg.constants import ASSETS_DIR, REPO_ROOT
from tests.helpers import TINY_TRAINER, composed

CKPT = Path(__file__).parent / "fixtures" / "checkpoints_0_1" / "mgca.ckpt"


def test_units_and_per_pixel_halves_equal_two_evaluations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mrovseg.eval import evaluate

    spec = importlib.util.spec_from_file_location(
        "mgca_eval_units", REPO_ROOT / "scripts" / "mgca_eval_units.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["mgca_eval_units.py", "--ckpt", str(CKPT), "--out", str(tmp_path / "both"), "--num-test", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    for half, units in (("units", "true"), ("plain", "false")):
        got = json.loads((tmp_path / "both" / half / "metrics.json").read_text())["toy"]
        overrides = [
            "experiment=mgca_toy",
            f"ckpt_path={CKPT}",
            f"clip.pretrained={ASSETS_DIR / 'toy_clip' / 'toy-vit-p4-32.pt'}",  # the checkpoint's CLIP
            "data.num_test=2",
            f"model.units.enabled={units}",
        ]
        with composed("eval", tmp_path / half, overrides, base=TINY_TRAINER) as cfg:
            ref = evaluate(cfg)["toy"]
        assert got["num_images"] == 2
        assert got["mIoU"] == pytest.approx(ref["mIoU"], abs=1e-9), half
        per_class = {
            k: float("nan") if v is None else v for k, v in got["per_class_iou"].items()
        }  # JSON null
        assert per_class == pytest.approx(ref["per_class_iou"], abs=1e-9, nan_ok=True), half
