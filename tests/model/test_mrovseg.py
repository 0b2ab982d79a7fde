"""Tests for the MROVSeg meta-architecture: every ablation switch, output shapes, frozen CLIP.

Output shapes (toy CLIP, patch 4, clip_size 32, 64² input, N queries, K classes):
``pred_logits`` ``(B, N, K+1)``; ``pred_masks`` ``(B, N, 4·G, 4·G)`` with the hierarchical decoder
and ``(B, N, G, G)`` without, where G is the high-res token grid: ``64/4 = 16`` for p > 0 and the
global view's ``32/4 = 8`` for p = 0 (no slices: the global grid is the only grid).
``aux_outputs``: ``depth − 1`` dicts of the same shapes in training with deep supervision, else none.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mrovseg.model.criterion import SetCriterion, targets_from_semantic

B, K, SIZE = 2, 3, 64

SWITCHES: list[tuple[str, dict[str, Any]]] = [
    *[(f"p={p}", {"slice_ratio": p}) for p in (0.0, 0.25, 0.5, 0.625, 0.75, 1.0)],
    *[(f"spatial={s}", {"adapter": {"spatial_fusion": s}}) for s in ("dconv", "concat")],
    *[
        (f"multires={m}", {"adapter": {"multires_fusion": m}})
        for m in ("scale_attention", "add", "concat", "none")
    ],
    ("depth=1", {"adapter": {"depth": 1}}),
    ("depth=3", {"adapter": {"depth": 3}}),
    ("fusion=[1,2]", {"adapter": {"fusion_layers": [1, 2]}}),
    ("fusion=[0,1,2,3]", {"adapter": {"fusion_layers": [0, 1, 2, 3]}}),
    ("fusion=[3]", {"adapter": {"fusion_layers": [3]}}),
    ("dim=48", {"adapter": {"dim": 48, "num_heads": 3}}),
    ("queries=9", {"adapter": {"num_queries": 9}}),
    ("hierarchical=off", {"decoder": {"hierarchical": False}}),
    ("decoupled=off", {"classifier": {"decoupled": False}}),
    ("deep_supervision=off", {"deep_supervision": False}),
    ("num_cls_blocks=3", {"num_cls_blocks": 3}),
    (
        "p=0,single-scale,single-mask",
        {"slice_ratio": 0.0, "decoder": {"hierarchical": False}, "classifier": {"decoupled": False}},
    ),
]


def _expected(options: dict[str, Any]) -> dict[str, int]:
    adapter = options.get("adapter", {})
    grid = 8 if options.get("slice_ratio", 0.5) == 0 else 16
    hierarchical = options.get("decoder", {}).get("hierarchical", True)
    return {
        "queries": adapter.get("num_queries", 5),
        "mask_side": 4 * grid if hierarchical else grid,
        "aux": adapter.get("depth", 2) - 1 if options.get("deep_supervision", True) else 0,
    }


@pytest.mark.parametrize(("name", "options"), SWITCHES, ids=[name for name, _ in SWITCHES])
def test_every_switch_runs_forward_and_backward(
    make_model, text_embeddings, name: str, options: dict
) -> None:
    model = make_model(**options).train()
    exp = _expected(options)
    out = model(torch.rand(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)), text_embeddings)
    n, side = exp["queries"], exp["mask_side"]
    assert out["pred_logits"].shape == (B, n, K + 1)
    assert out["pred_masks"].shape == (B, n, side, side)
    assert len(out["aux_outputs"]) == exp["aux"]
    for aux in out["aux_outputs"]:
        assert aux["pred_logits"].shape == (B, n, K + 1)
        assert aux["pred_masks"].shape == (B, n, side, side)
    assert torch.isfinite(out["pred_logits"]).all() and torch.isfinite(out["pred_masks"]).all()
    loss = out["pred_logits"].logsumexp(-1).mean() + out["pred_masks"].sigmoid().mean()
    loss = loss + sum(a["pred_logits"].mean() + a["pred_masks"].mean() for a in out["aux_outputs"])
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    grads = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    for part in ("adapter.", "decoder.", "classifier."):
        assert any(g.startswith(part) for g in grads), part

    model.eval()
    with torch.no_grad():
        out_eval = model(torch.rand(1, 3, SIZE, SIZE), text_embeddings)
    assert out_eval["aux_outputs"] == []
    assert out_eval["pred_masks"].shape == (1, n, side, side)


@pytest.mark.parametrize("deep_supervision", [True, False])
def test_adamw_step_changes_heads_and_leaves_clip_bit_identical(make_model, deep_supervision: bool) -> None:
    model = make_model(num_cls_blocks=2, deep_supervision=deep_supervision).train()
    clip_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainable_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)

    g = torch.Generator().manual_seed(0)
    images = torch.rand(B, 3, SIZE, SIZE, generator=g)
    labels = torch.randint(0, K, (B, SIZE, SIZE), generator=g)
    labels[:, :8] = -1  # some ignored pixels
    text = torch.nn.functional.normalize(torch.randn(K, 64, generator=g), dim=-1)
    crit = SetCriterion(num_points=256)
    out = model(images, text)
    assert len(out["aux_outputs"]) == (1 if deep_supervision else 0)
    loss = crit.total(crit(out, targets_from_semantic(labels)))
    assert torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    optimizer.step()

    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, clip_before[k]), k
    assert all(not n.startswith("backbone.") for n in trainable_before)
    unchanged = [
        n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, trainable_before[n])
    ]
    assert unchanged == []  # every adapter, decoder and classifier parameter moved
    for part in ("adapter.", "decoder.", "classifier."):
        assert any(n.startswith(part) for n in trainable_before), part


def test_trainable_parameters_are_everything_but_clip(make_model) -> None:
    model = make_model()
    trainable = {id(p) for p in model.trainable_parameters()}
    expected = {id(p) for n, p in model.named_parameters() if not n.startswith("backbone.")}
    assert trainable == expected
    assert not any(p.requires_grad for p in model.backbone.parameters())
    model.train()
    assert model.adapter.training and not model.backbone.training


def test_eval_outputs_are_deterministic_and_batch_independent(make_model, text_embeddings) -> None:
    model = make_model().eval()
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        both = model(images, text_embeddings)
        second = model(images[1:], text_embeddings)
    torch.testing.assert_close(both["pred_logits"][1:], second["pred_logits"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both["pred_masks"][1:], second["pred_masks"], atol=1e-4, rtol=1e-4)


def test_invalid_configurations_raise(make_model) -> None:
    with pytest.raises(ValueError, match="num_cls_blocks"):
        make_model(num_cls_blocks=4)
    with pytest.raises(ValueError, match="exceed CLIP depth"):
        make_model(adapter={"fusion_layers": [0, 4]})
    with pytest.raises(ValueError, match="init must be one of"):
        make_model(init="xavier")


def test_vit_init_redraws_linear_layers_only(make_model) -> None:
    torch_init, vit = make_model(seed=3), make_model(seed=3, init="vit")
    linear = 0
    for (name, a), (_, b) in zip(torch_init.named_modules(), vit.named_modules(), strict=True):
        params = dict(a.named_parameters(recurse=False))
        if name.startswith("backbone") or not params:
            continue
        other = dict(b.named_parameters(recurse=False))
        if isinstance(a, torch.nn.Linear):
            linear += 1
            w = other["weight"]
            assert 0.015 < w.std() < 0.025 and w.abs().max() < 0.15, (
                name
            )  # std 0.02 (torch's default init: ~1/sqrt(3 fan_in))
            assert not torch.equal(w, params["weight"]), name
            assert other["bias"] is None or not other["bias"].any(), name
        else:  # convolutions, norms, queries, the zero-initialised MRF gate: as PyTorch / the module drew them
            for key, value in params.items():
                assert torch.equal(value, other[key]), f"{name}.{key}"
    assert linear > 10
    for a, b in zip(torch_init.backbone.parameters(), vit.backbone.parameters(), strict=True):
        assert torch.equal(a, b)
