"""``compile=true`` (mrovseg.serving.compile): the forward compiles once and runs without recompiling, the
setting reaches the Segmenter from predict's and the demo's configs, and compiled labels equal eager ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo
import torch._inductor.config as inductor_config

from mrovseg.serving import compile as inference_compile
from mrovseg.serving.segmenter import Segmenter
from tests.test_precision import TEMPLATES, VOCAB, fresh, toy_image


def test_the_forward_compiles_once_without_recompiling(make_model, text_embeddings) -> None:
    """Dynamo traces MROVSeg's forward once: nothing it reads changes between calls (the trunk-call counter
    and the positional-embedding cache are eager-only), so a second call does not recompile."""
    model = fresh(make_model).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = model.semantic_scores(images, text_embeddings)
    calls = model.backbone.num_trunk_calls
    torch._dynamo.reset()
    compiled = torch.compile(model.forward, backend="eager", dynamic=False)
    with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True):
        first = compiled(images, text_embeddings)
        second = compiled(images, text_embeddings)  # a guard failure here raises
    torch._dynamo.reset()
    for out in (first, second):
        torch.testing.assert_close(out["pred_logits"], first["pred_logits"])
    assert model.backbone.num_trunk_calls == calls  # not counted while compiled
    with torch.no_grad():
        torch.testing.assert_close(model.semantic_scores(images, text_embeddings), eager)
    assert model.backbone.num_trunk_calls == calls + 1


def test_compile_for_inference_turns_on_freezing_and_compiles_in_place(make_model, monkeypatch) -> None:
    model = fresh(make_model)
    seen = {}
    monkeypatch.setattr(model, "compile", lambda **kw: seen.update(kw))
    names = list(model.state_dict())
    with inductor_config.patch(freezing=False):  # a process-wide setting: restored on exit
        assert inference_compile.compile_for_inference(model) is model
        assert inductor_config.freezing is True and seen == {"dynamic": False}
    assert list(model.state_dict()) == names


@pytest.mark.parametrize("flag", [False, True])
def test_segmenter_compiles_only_when_asked(make_model, monkeypatch, flag: bool) -> None:
    compiled = []
    monkeypatch.setattr(inference_compile, "compile_for_inference", lambda m: compiled.append(m) or m)
    seg = Segmenter(fresh(make_model), TEMPLATES, window=64, short_side=None, precision="fp32", compile=flag)
    assert compiled == ([seg.model] if flag else [])


@pytest.mark.parametrize("entry", ["predict", "demo"])
def test_the_config_key_reaches_the_segmenter(monkeypatch, tmp_path, entry: str) -> None:
    """``compile=true`` on predict's and the demo's command line is passed to the checkpoint loader."""
    from omegaconf import OmegaConf

    seen = {}

    class Stop(Exception):
        pass

    def loader(source, **options):
        seen.update(options)
        raise Stop

    monkeypatch.setattr(Segmenter, "from_checkpoint", staticmethod(loader))
    from hydra import compose, initialize_config_dir

    from mrovseg.config import CONF_DIR

    overrides = ["ckpt_path=x.ckpt", "compile=true", "device=cpu"]
    if entry == "predict":
        from PIL import Image

        from mrovseg.predict import predict as run

        Image.fromarray(toy_image()).save(tmp_path / "photo.png")
        overrides += [
            f"inputs={tmp_path}",
            f"output_dir={tmp_path / 'out'}",
            "vocabulary=[a,b]",
            "clip.pretrained=null",
        ]
    else:
        from mrovseg.demo.app import build_from_config as run

        overrides += [f"output_dir={tmp_path / 'out'}", "clip.pretrained=null"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(entry, overrides)
    assert OmegaConf.select(cfg, "compile") is True
    with pytest.raises(Stop):
        run(cfg)
    assert seen["compile"] is True


@pytest.mark.slow
def test_compiled_labels_equal_eager_labels(make_model, monkeypatch) -> None:
    """Inductor with freezing on the toy model (about a minute to compile on 2 cores): the same labels."""
    monkeypatch.setattr(inductor_config, "freezing", inductor_config.freezing)  # restored afterwards
    monkeypatch.setenv("MROVSEG_CACHE", "off")
    eager = Segmenter(fresh(make_model), TEMPLATES, window=64, short_side=None, precision="fp32")
    torch._dynamo.reset()
    compiled = Segmenter(
        fresh(make_model), TEMPLATES, window=64, short_side=None, precision="fp32", compile=True
    )
    a, b = eager(toy_image(3), VOCAB), compiled(toy_image(3), VOCAB)
    torch._dynamo.reset()
    assert np.mean(a.labels == b.labels) >= 0.999
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
