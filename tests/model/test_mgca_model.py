"""The MGCA-style model: score contract, units switch, start from MaskCLIP, trainable parts only."""

from __future__ import annotations

import torch

from mrovseg.model.mgca import MGCA
from mrovseg.model.training_free.dense_clip import DenseCLIP
from tests.conftest import make_toy_backbone


def test_scores_contract_units_switch_and_maskclip_start() -> None:
    torch.manual_seed(0)
    bb = make_toy_backbone()
    model = MGCA(bb, dim=16, depth=1, upsample=1, units={"enabled": False})
    images = torch.rand(2, 3, 32, 32)
    text = torch.nn.functional.normalize(torch.randn(5, bb.embed_dim), dim=-1)
    scores = model.semantic_scores(images, text)
    assert scores.shape == (2, 5, 8, 8)
    assert torch.allclose(scores.sum(1), torch.ones(2, 8, 8), atol=1e-5)
    # the decoder's output layer starts at zero: the untrained model is MaskCLIP (DenseCLIP)
    assert torch.allclose(scores, DenseCLIP(bb).semantic_scores(images, text), atol=1e-5)
    assert all(not n.startswith("backbone.") for n, _ in model.named_parameters() if _.requires_grad)
    model.units["enabled"] = True
    unit = model.semantic_scores(images, text)
    assert unit.shape == scores.shape
    up = MGCA(bb, dim=16, depth=1, upsample=2)
    emb, base = up.embeddings(images)
    assert emb.shape == base.shape == (2, bb.embed_dim, 16, 16)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)


def test_unit_stride_is_stated_once_two_patches_of_the_pixel_grid() -> None:
    """The seed spacing of the units has one default, in the code (2 patches = 2 × upsample pixels of
    the pixel grid); conf/model/mgca.yaml defers to it (null) instead of restating a number."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mrovseg.config import CONF_DIR

    bb = make_toy_backbone()
    for up in (1, 2, 4):
        assert MGCA(bb, dim=8, depth=1, upsample=up).units["stride"] == 2 * up
    assert MGCA(bb, dim=8, depth=1, upsample=4, units={"stride": 3}).units["stride"] == 3  # set: kept
    cfg = OmegaConf.load(CONF_DIR / "model" / "mgca.yaml")
    assert cfg.units.stride is None
    real = instantiate(cfg, backbone=bb, dim=8)
    assert real.upsample == 4 and real.units["stride"] == 8  # ViT-B/16 at 448: 112² pixels, 14² seeds
