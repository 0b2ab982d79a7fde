"""Shared fixtures: the tiny random-weight CLIP and a factory of tiny MROVSeg models.

The toy CLIP (``assets/toy_clip/toy-vit-p4-32.json``): 3 layers, width 64, 2 heads, patch 4,
native input 32² (8×8 grid), joint embedding 64. With ``clip_size=32`` and 64² inputs, p = 0.5
gives 4 slices of 32², i.e. the paper's 640² / 320² set-up scaled down by 10 (in pixels).
Nothing here touches the network (``pretrained=None``).

Tests run single-threaded: their tensors are tiny, and on a shared 2-core machine PyTorch's
intra-op thread pool makes them 10× slower under contention (set ``MROVSEG_TEST_THREADS`` to change).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from mrovseg.config import CONF_DIR
from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.mrovseg.model import MROVSeg

torch.set_num_threads(int(os.environ.get("MROVSEG_TEST_THREADS", "1")))

# Text-embedding disk cache (mrovseg.model.text_cache): a fresh folder per session, never ~/.cache.
os.environ["MROVSEG_CACHE"] = tempfile.mkdtemp(prefix="mrovseg-test-cache-")
atexit.register(shutil.rmtree, os.environ["MROVSEG_CACHE"], ignore_errors=True)

#: Adapter settings small enough for a 2-core CPU (the paper's are dim 768, depth 6, 12 heads, 100 queries).
TINY_ADAPTER: dict[str, Any] = {
    "dim": 32,
    "depth": 2,
    "num_heads": 2,
    "num_queries": 5,
    "fusion_layers": [0, 1, 2, 3],
    "mask_dim": 16,
}


def make_toy_backbone(pretrained: str | None = None) -> CLIPBackbone:
    """The toy CLIP of the real config (``conf/clip/toy.yaml``) with random (``pretrained=None``) or
    file weights."""
    kwargs = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "clip" / "toy.yaml"), resolve=True)
    assert kwargs.pop("_target_") == "mrovseg.model.clip_backbone.CLIPBackbone"
    return CLIPBackbone(**{**kwargs, "pretrained": pretrained})  # errors of the class itself, unwrapped


@pytest.fixture(scope="session")
def toy_backbone() -> CLIPBackbone:
    """One toy CLIP with fixed random weights for the whole session (frozen; never modified)."""
    torch.manual_seed(0)
    return make_toy_backbone()


@pytest.fixture
def make_backbone() -> Callable[..., CLIPBackbone]:
    """``make_toy_backbone`` as a fixture (for tests that load weight files)."""
    return make_toy_backbone


@pytest.fixture
def make_model(toy_backbone: CLIPBackbone) -> Callable[..., MROVSeg]:
    """Factory of tiny MROVSeg models on the shared toy CLIP.

    Keyword arguments override ``MROVSeg``'s (``slice_ratio``, ``num_cls_blocks``, ``decoder``, ...);
    ``adapter`` entries are merged into ``TINY_ADAPTER``. Defaults: p = 0.5, clip_size 32,
    ``num_cls_blocks=1``; the seed is fixed so each model is reproducible.
    """

    def factory(seed: int = 0, adapter: dict[str, Any] | None = None, **kwargs: Any) -> MROVSeg:
        torch.manual_seed(seed)
        options: dict[str, Any] = {"slice_ratio": 0.5, "clip_size": 32, "num_cls_blocks": 1}
        options.update(kwargs)
        return MROVSeg(toy_backbone, adapter={**TINY_ADAPTER, **(adapter or {})}, **options)

    return factory


@pytest.fixture
def text_embeddings() -> torch.Tensor:
    """Three random L2-normalised class embeddings ``(3, 64)`` (K = 3)."""
    g = torch.Generator().manual_seed(1)
    return torch.nn.functional.normalize(torch.randn(3, 64, generator=g), dim=-1)
