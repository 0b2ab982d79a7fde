"""Fixtures of the prediction tests: a tiny trained checkpoint, a segmenter on it and toy images.

The checkpoint comes from the real training entry point (``mrovseg.train.train`` on a composed
config): the default toy experiment with a smaller adapter, one training step, no validation, no
loggers. It takes a few seconds on a 2-core CPU and is shared by the whole session. Its toy CLIP has
random weights (nothing comes from the network), saved once to a file and passed as
``clip.pretrained=<file>``: checkpoints do not hold CLIP weights, so with ``clip.pretrained=null``
every load would draw a different random CLIP and two loads would disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from PIL import Image

from mrovseg.config import CONF_DIR

#: Overrides of the default (toy) experiment that make training one step take a few seconds.
TINY_TRAIN_OVERRIDES = [
    "model.adapter.dim=32",
    "model.adapter.depth=2",
    "model.adapter.num_heads=2",
    "model.adapter.num_queries=5",
    "model.adapter.mask_dim=16",
    "criterion.num_points=256",
    "criterion.matcher.num_points=256",
    "data.batch_size=2",
    "data.num_val=1",
    "data.num_test=1",
    "trainer.max_steps=1",
    "trainer.val_check_interval=1",
    "trainer.limit_val_batches=0",
    "trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "callbacks.model_checkpoint.monitor=null",
    "logger={}",
    "test=false",
]


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Composes ``conf/<name>.yaml`` outside a Hydra run (``paths.output_dir`` set explicitly)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture(scope="session")
def tiny_clip_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state-dict file of the toy CLIP with fixed random weights (seed 0)."""
    import torch

    from mrovseg.constants import ASSETS_DIR
    from mrovseg.model.clip_backbone import build_open_clip

    torch.manual_seed(0)
    clip = build_open_clip("toy-vit-p4-32", None, ASSETS_DIR / "toy_clip" / "toy-vit-p4-32.json")
    path = tmp_path_factory.mktemp("clip") / "toy-clip-random.pt"
    torch.save(clip.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory, tiny_clip_weights: Path) -> Path:
    """``last.ckpt`` of a one-step training run of the tiny toy model."""
    from mrovseg.train import train

    out = tmp_path_factory.mktemp("tinyrun")
    train(compose_config("train", [*TINY_TRAIN_OVERRIDES, f"clip.pretrained={tiny_clip_weights}"], out))
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


@pytest.fixture(scope="session")
def segmenter(tiny_ckpt: Path):
    """A CPU segmenter on the tiny checkpoint at native resolution (shared; do not mutate)."""
    from mrovseg.serving.segmenter import Segmenter

    return Segmenter.from_checkpoint(tiny_ckpt, device="cpu", short_side=None)


@pytest.fixture(scope="session")
def varied_vocab(segmenter) -> list[str]:
    """A two-class vocabulary whose label map of ``toy_image(0)`` holds both classes (≥ 5 % each).

    A one-step model labels most images with a single class, which would make pixel-equality checks
    vacuous; its predictions still depend on each window's content, so some pair of toy class names
    splits ``toy_image(0)``. The first such pair (in a fixed order) is used.
    """
    from itertools import combinations

    from mrovseg.data.synthetic import ToyWorld

    image = toy_image(0)
    for pair in combinations(ToyWorld().class_names, 2):
        counts = segmenter.segment(image, list(pair), return_scores=False).pixel_counts
        if counts.min() >= 0.05 * image.shape[0] * image.shape[1]:
            return list(pair)
    pytest.fail("no pair of toy class names splits toy_image(0): the tiny model's predictions are constant")


def toy_image(index: int = 0, height: int = 96, width: int = 128) -> np.ndarray:
    """A rendered toy-world scene as ``uint8 (H, W, 3)``."""
    from mrovseg.data.synthetic import SceneConfig, ToyWorld, render_scene, scene_rng

    cfg = SceneConfig(height=height, width=width, num_objects=(3, 6))
    scene = render_scene(scene_rng(0, "predict-test", index), ToyWorld(), cfg)
    return (scene.image * 255).round().astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A folder with two toy scenes (PNG, JPEG) and a non-image text file that folders skip."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(toy_image(0)).save(folder / "scene_a.png")
    Image.fromarray(toy_image(1, 80, 100)).save(folder / "scene_b.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def make_predict_cfg(tiny_ckpt: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """Composes ``conf/predict.yaml`` for the tiny checkpoint; extra overrides are appended."""

    def factory(*overrides: str) -> DictConfig:
        base = [f"ckpt_path={tiny_ckpt}", "short_side=null", "device=cpu", "progress=false"]
        if not any(o.startswith("output_dir=") for o in overrides):
            base.append(f"output_dir={tmp_path / 'pred'}")
        return compose_config("predict", base + list(overrides), tmp_path / "hydra")

    return factory
