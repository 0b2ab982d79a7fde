"""Models take only their own options (issue 21): no ``**ignored`` that swallows another model's settings.

OVSeg and the dense-CLIP baseline used to accept and drop MROVSeg's options (``slice_ratio``,
``adapter``, …), so a misspelt or misplaced option passed silently. Now an unknown option is a
``TypeError``, and every experiment config gives its model only the arguments the model's class names.
"""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from mrovseg.config import CONF_DIR
from mrovseg.model.ovseg import OVSeg
from mrovseg.model.training_free.dense_clip import DenseCLIP
from tests.helpers import compose_with_hydra

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize(("model", "option"), [(OVSeg, "slice_ratio"), (DenseCLIP, "adapter")])
def test_unknown_options_are_an_error(toy_backbone, model, option):
    with pytest.raises(TypeError, match=option):
        model(toy_backbone, **{option: 0.5})


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_give_their_model_only_its_own_options(experiment):
    entry = "eval" if experiment.startswith("dense_clip") else "train"
    model = OmegaConf.to_container(
        compose_with_hydra(entry, [f"experiment={experiment}"]).model, resolve=False
    )
    params = inspect.signature(get_class(model.pop("_target_")).__init__).parameters
    named = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    assert set(model) <= named, f"{experiment}: options {sorted(set(model) - named)} of another model"


def test_dense_clip_experiments_compose_with_the_baseline():
    for experiment in ("dense_clip_toy", "dense_clip_vitb16"):
        cfg = compose_with_hydra("eval", [f"experiment={experiment}"])
        assert cfg.model._target_ == "mrovseg.model.training_free.dense_clip.DenseCLIP"
        assert set(cfg.model) == {"_target_", "view_size", "residual"}
