"""Training-free models need no checkpoint (issue 24): eval, predict, the demo and ``Segmenter.from_config``
build them from configs alone, on the shipped toy CLIP (no network), through the same evaluation path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrovseg.constants import ASSETS_DIR
from mrovseg.eval import evaluate
from mrovseg.model.inference import upsample_argmax
from mrovseg.predict import predict
from mrovseg.serving.from_config import build_config, experiment_for, training_free_models
from mrovseg.serving.segmenter import Segmenter
from mrovseg.training.checkpoint import build_module
from tests.helpers import TINY_DATA, TINY_TRAINER, composed
from tests.predict.conftest import compose_config, toy_image

TOY_WEIGHTS = str(ASSETS_DIR / "toy_clip" / "toy-vit-p4-32.pt")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(toy_image(0)).save(path)
    return path


@pytest.fixture(scope="module")
def naclip_toy() -> Segmenter:
    """NACLIP on the shipped (pretrained) toy CLIP, fp32, from its experiment alone."""
    return Segmenter.from_config("naclip_toy", device="cpu", precision="fp32")


def test_the_training_free_models_are_the_family() -> None:
    assert training_free_models() == ["clearclip", "dense_clip", "naclip", "sclip"]
    model = {"_target_": "mrovseg.model.training_free.methods.NACLIP"}
    assert experiment_for(model, {"model_name": "toy-vit-p4-32"}) == "naclip_toy"
    assert experiment_for(model, {"pretrained": "/weights.pt"}) == "naclip_vitb16"
    with pytest.raises(ValueError, match="ckpt_path is required: model=ovseg is trained"):
        experiment_for({"_target_": "mrovseg.model.ovseg.OVSeg"})


@pytest.mark.parametrize("experiment", ["sclip_toy", "clearclip_toy", "naclip_toy"])
def test_eval_needs_no_checkpoint(tmp_path: Path, experiment: str) -> None:
    with composed("eval", tmp_path, [f"experiment={experiment}"], base=TINY_DATA + TINY_TRAINER) as cfg:
        assert not cfg.get("ckpt_path")
        results = evaluate(cfg)
    entry = json.loads((tmp_path / "metrics.json").read_text())["toy"]
    assert entry["num_images"] == 2 and entry["mIoU"] == pytest.approx(results["toy"]["mIoU"])


def test_segmenter_from_config_is_the_evaluation_path(naclip_toy: Segmenter) -> None:
    """The labels of ``Segmenter.from_config`` are those of the module eval builds from the same config."""
    assert naclip_toy.templates == ["a photo of a {}."] and naclip_toy.window == 32
    assert naclip_toy.short_side is None and naclip_toy.window_overlap == 0.5
    module = build_module(build_config("naclip_toy"))
    image = toy_image(0)
    names, text = naclip_toy.text_embeddings("toy")
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255.0)
    expected = upsample_argmax(module.predict_scores(x, text), image.shape[:2]).numpy()
    result = naclip_toy.segment(image, names, return_scores=True)
    np.testing.assert_array_equal(result.labels, expected)
    assert len(np.unique(result.labels)) > 1  # the toy CLIP sees the scene: not one class everywhere
    torch.testing.assert_close(torch.from_numpy(result.scores).sum(dim=0), torch.ones(96, 128))


def test_from_config_refuses_a_trained_model() -> None:
    with pytest.raises(ValueError, match="has trained parameters"):
        Segmenter.from_config("toy", ["clip.pretrained=null"], precision="fp32")


def test_predict_with_a_model_and_no_checkpoint(tmp_path: Path, scene: Path, naclip_toy: Segmenter) -> None:
    base = [f"inputs={scene}", "vocabulary=toy", "device=cpu", "precision=fp32", "progress=false"]
    cfg = compose_config("predict", [*base, "model=naclip", "clip=toy", f"output_dir={tmp_path}"], tmp_path)
    summary = predict(cfg)
    assert summary.ok == ["scene"] and not summary.failed
    saved = json.loads((tmp_path / "scene.json").read_text())
    assert saved["experiment"] == "naclip_toy" and saved["checkpoint"] is None
    expected = naclip_toy.segment(scene, "toy", return_scores=False)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "scene_labels.png")), expected.labels)

    # a switch and PAMR from the command line, and the CLIP weights as a file (offline machines)
    out = tmp_path / "pamr"
    overrides = [*base, "model=naclip", "clip=toy", "model.post=pamr", "model.pamr_dilations=[2,4]"]
    cfg = compose_config("predict", [*overrides, f"clip.pretrained={TOY_WEIGHTS}", f"output_dir={out}"], out)
    predict(cfg)
    refined = Segmenter.from_config(
        "naclip_toy", ["model.post=pamr", "model.pamr_dilations=[2,4]"], precision="fp32"
    ).segment(scene, "toy", return_scores=False)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "scene_labels.png")), refined.labels)
    assert not np.array_equal(refined.labels, expected.labels)


def test_predict_without_checkpoint_or_training_free_model_is_an_error(tmp_path: Path, scene: Path) -> None:
    base = [f"inputs={scene}", "vocabulary=toy", "device=cpu", f"output_dir={tmp_path}"]
    with pytest.raises(ValueError, match=r"ckpt_path is required: .* or model=<name>"):
        predict(compose_config("predict", base, tmp_path))
    with pytest.raises(ValueError, match="model=mrovseg is trained"):
        predict(compose_config("predict", [*base, "model=mrovseg", "clip=toy"], tmp_path))


def test_demo_builds_without_checkpoint(tmp_path: Path, scene: Path, naclip_toy: Segmenter) -> None:
    pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')
    from mrovseg.demo.app import build_from_config

    overrides = ["model=naclip", "clip=toy", "device=cpu", "precision=fp32", "demo.num_examples=1"]
    _, session = build_from_config(compose_config("demo", [*overrides, f"output_dir={tmp_path}"], tmp_path))
    out = session.segment(str(scene), "red circle\nblue square\nbackground", alpha=0.5)
    expected = naclip_toy.segment(scene, ["red circle", "blue square", "background"], return_scores=False)
    np.testing.assert_array_equal(out.result.labels, expected.labels)
    assert out.payload["experiment"] == "naclip_toy"
