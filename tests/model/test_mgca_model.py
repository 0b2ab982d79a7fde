"""The MGCA-style model: score contract, units switch, start from MaskCLIP, trainable parts only."""

from __future__ import annotations

import torch

from mrovseg.model.training_free.dense_clip import DenseCLIP
from mrovseg.model.mgca import MGCA
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
