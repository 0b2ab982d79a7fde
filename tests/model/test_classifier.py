"""Tests for decoupled attention masks and multi-grained masked attention (Eq. 6-8).

Faithfulness: a proposal that starts as CLIP's [CLS] of the tap layer (zero ``query_pos``) and
may attend to the global view's patch tokens (Algorithm 1, the default) is CLIP's own [CLS] path
with its [CLS] → [CLS] attention removed at the classification blocks, computed here with
open_clip's own blocks and an attention mask. With ``cls_key=True`` (the earlier variant) it may
attend to exactly the tokens CLIP's [CLS] attends to, so its embedding equals open_clip's
``encode_image`` of that view. Locality: under a bias that is −inf outside a region R of the
patch tokens, the proposal's output depends on the K/V of R only — and, by default, never on the
global [CLS] key/value.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.mrovseg.classifier import MultiGrainedClassifier
from mrovseg.model.mrovseg.slicer import Slicer

DIM, MASK_DIM, QUERIES = 16, 8, 4


def _classifier(
    backbone: CLIPBackbone, decoupled: bool = True, seed: int = 0, cls_key: bool = False
) -> MultiGrainedClassifier:
    torch.manual_seed(seed)
    return MultiGrainedClassifier(
        DIM,
        MASK_DIM,
        backbone.width,
        backbone.heads,
        backbone.embed_dim,
        QUERIES,
        decoupled=decoupled,
        cls_key=cls_key,
    )


def _cls_path_without_cls_key(backbone: CLIPBackbone, views: torch.Tensor, cls_layer: int) -> torch.Tensor:
    """open_clip's own [CLS] path of normalised native-size views, with the [CLS] → [CLS] attention
    masked out in blocks ``cls_layer ..`` (patch rows unchanged): L2-normalised ``(N, E)``."""
    visual = backbone.visual
    x = rearrange(visual.conv1(views), "n d h w -> n (h w) d")
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
    mask = torch.zeros(x.shape[1], x.shape[1])
    mask[0, 0] = float("-inf")
    for i, block in enumerate(visual.transformer.resblocks):
        x = block(x, attn_mask=mask if i >= cls_layer else None)
    return F.normalize(backbone.head(x[:, 0]), dim=-1)


def _embeddings(backbone: CLIPBackbone, logits: torch.Tensor) -> torch.Tensor:
    """With the identity as text embeddings, logits[..., :E] / scale is the proposal's embedding."""
    return logits[..., : backbone.embed_dim] / backbone.logit_scale


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("num_cls_blocks", [1, 2, 3])
def test_zero_bias_on_patch_keys_is_clip_cls_path_without_cls_key(
    toy_backbone: CLIPBackbone, num_cls_blocks: int
) -> None:
    """Algorithm 1 keys (the default): keys = the global patch tokens only."""
    views = toy_backbone.normalize(_images(2, 32, seed=0))
    cls_layer = toy_backbone.depth - num_cls_blocks
    feats = toy_backbone.forward_views(views, tap_layers=[cls_layer], cls_layer=cls_layer)
    classifier = _classifier(toy_backbone)
    assert not classifier.cls_key
    patch_kv = [(k[:, :, 1:], v[:, :, 1:]) for k, v in feats.kv]
    bias = torch.zeros(2, toy_backbone.heads, QUERIES, 64)
    text = torch.eye(toy_backbone.embed_dim)
    with torch.no_grad():
        logits = classifier(toy_backbone, feats.layers[cls_layer][:, 0], patch_kv, bias, text)
        expected = _cls_path_without_cls_key(toy_backbone, views, cls_layer)
        with_cls = F.normalize(toy_backbone.clip.encode_image(views), dim=-1)
    for q in range(QUERIES):
        torch.testing.assert_close(_embeddings(toy_backbone, logits)[:, q], expected, atol=1e-5, rtol=0)
    assert (expected - with_cls).abs().max() > 1e-3  # blocking the [CLS] key does change the path


@pytest.mark.parametrize("num_cls_blocks", [1, 2, 3])
def test_zero_bias_at_p0_with_cls_key_equals_open_clip_image_embedding(
    toy_backbone: CLIPBackbone, num_cls_blocks: int
) -> None:
    views = toy_backbone.normalize(_images(2, 32, seed=0))
    cls_layer = toy_backbone.depth - num_cls_blocks
    feats = toy_backbone.forward_views(views, tap_layers=[cls_layer], cls_layer=cls_layer)
    classifier = _classifier(toy_backbone, cls_key=True)
    assert torch.equal(classifier.query_pos, torch.zeros_like(classifier.query_pos))
    bias = torch.zeros(2, toy_backbone.heads, QUERIES, 1 + 64)
    text = torch.eye(toy_backbone.embed_dim)
    with torch.no_grad():
        logits = classifier(toy_backbone, feats.layers[cls_layer][:, 0], feats.kv, bias, text)
        expected = F.normalize(toy_backbone.clip.encode_image(views), dim=-1)
    assert logits.shape == (2, QUERIES, toy_backbone.embed_dim + 1)
    for q in range(QUERIES):
        torch.testing.assert_close(_embeddings(toy_backbone, logits)[:, q], expected, atol=1e-5, rtol=0)


def test_void_column_is_cosine_with_void_embedding(toy_backbone: CLIPBackbone) -> None:
    views = toy_backbone.normalize(_images(1, 32, seed=1))
    feats = toy_backbone.forward_views(views, tap_layers=[2], cls_layer=2)
    classifier = _classifier(toy_backbone)
    text = torch.eye(toy_backbone.embed_dim)
    with torch.no_grad():
        logits = classifier(
            toy_backbone, feats.layers[2][:, 0], feats.kv, torch.zeros(1, 2, QUERIES, 65), text
        )
    emb = _embeddings(toy_backbone, logits)
    void = F.normalize(classifier.void_embed.detach(), dim=0)
    torch.testing.assert_close(logits[..., -1], toy_backbone.logit_scale * emb @ void, atol=1e-5, rtol=0)


class _Capture:
    """Wraps ``classifier.forward`` to record its inputs; optionally replaces the bias."""

    def __init__(self, classifier: MultiGrainedClassifier, bias_fn=None) -> None:
        self.forward = classifier.forward
        self.bias_fn = bias_fn
        self.calls: list[dict] = []

    def __call__(self, backbone, cls_token, kv, bias, text_embeddings):
        if self.bias_fn is not None:
            bias = self.bias_fn(bias)
        self.calls.append({"cls_token": cls_token, "kv": kv, "bias": bias})
        return self.forward(backbone, cls_token, kv, bias, text_embeddings)


@pytest.mark.parametrize("cls_key", [False, True])
def test_global_only_bias_at_p05_equals_open_clip_on_the_global_view(
    make_model, monkeypatch, cls_key: bool
) -> None:
    """p = 0.5: bias 0 on the global view's keys, −inf on every slice token → CLIP's [CLS] path of the
    global view (without the [CLS] key by default; with it, ``encode_image`` of the global view)."""
    model = make_model(slice_ratio=0.5, num_cls_blocks=2, classifier={"cls_key": cls_key}).eval()
    backbone = model.backbone
    global_tokens = int(cls_key) + 8 * 8

    def global_only(bias: torch.Tensor) -> torch.Tensor:
        assert bias.shape[-1] == global_tokens + 4 * 8 * 8
        out = torch.zeros_like(bias)
        out[..., global_tokens:] = float("-inf")
        return out

    monkeypatch.setattr(model.classifier, "forward", _Capture(model.classifier, global_only))
    images = _images(2, 64, seed=2)
    with torch.no_grad():
        out = model(images, torch.eye(backbone.embed_dim))
        view = model.slicer.global_view(backbone.normalize(images))
        if cls_key:
            expected = F.normalize(backbone.clip.encode_image(view), dim=-1)
        else:
            expected = _cls_path_without_cls_key(backbone, view, cls_layer=1)
    for q in range(out["pred_logits"].shape[1]):
        torch.testing.assert_close(
            _embeddings(backbone, out["pred_logits"])[:, q], expected, atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("cls_key", [False, True])
def test_model_passes_clip_own_kv_of_global_view_and_slices(make_model, monkeypatch, cls_key: bool) -> None:
    """K/V handed to the classifier are ``[global patches; slice patches]`` of each image, in order
    (with ``cls_key``: ``[global CLS; global patches; slice patches]``)."""
    model = make_model(slice_ratio=0.5, num_cls_blocks=2, classifier={"cls_key": cls_key}).eval()
    backbone = model.backbone
    capture = _Capture(model.classifier)
    monkeypatch.setattr(model.classifier, "forward", capture)
    images = _images(2, 64, seed=3)
    with torch.no_grad():
        model(images, torch.eye(backbone.embed_dim))
        x = backbone.normalize(images)
        layout = model.slicer.layout(64, 64)
        glob = backbone.forward_views(model.slicer.global_view(x), [1], cls_layer=1)
        slices = backbone.forward_views(model.slicer.slices(x, layout), [1], cls_layer=1)
    call = capture.calls[0]
    torch.testing.assert_close(call["cls_token"], glob.layers[1][:, 0], atol=1e-6, rtol=0)
    assert len(call["kv"]) == 2
    g0 = 1 + 64 if cls_key else 64  # where the slice tokens start
    assert call["bias"].shape[-1] == g0 + 4 * 64
    for (k, v), (gk, gv), (sk, sv) in zip(call["kv"], glob.kv, slices.kv):
        assert k.shape == (2, backbone.heads, g0 + 4 * 64, 32)
        for got, g, s in ((k, gk, sk), (v, gv, sv)):
            torch.testing.assert_close(got[:, :, :g0], g if cls_key else g[:, :, 1:], atol=1e-6, rtol=0)
            for b in range(2):
                for i in range(4):  # slice i of image b is view 4b + i, its patches only
                    part = got[b, :, g0 + 64 * i : g0 + 64 * (i + 1)]
                    torch.testing.assert_close(part, s[4 * b + i, :, 1:], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("region", "cls_key", "cls_allowed"),
    [
        (slice(64 + 64, 64 + 128), False, False),  # slice 1's patch tokens (default keys: no [CLS])
        (slice(0, 24), False, False),  # the first three rows of global patches
        (slice(64 + 3 * 64 + 10, 64 + 3 * 64 + 30), False, False),  # part of slice 3
        (slice(65 + 64, 65 + 128), True, True),  # cls_key: slice 1's patch tokens, with the global [CLS]
        (slice(1, 1 + 24), True, False),  # cls_key: global patches, [CLS] masked out
    ],
)
def test_proposal_sees_only_its_region(
    make_model, monkeypatch, region: slice, cls_key: bool, cls_allowed: bool
) -> None:
    model = make_model(slice_ratio=0.5, num_cls_blocks=2, classifier={"cls_key": cls_key}).eval()
    backbone = model.backbone
    capture = _Capture(model.classifier)
    monkeypatch.setattr(model.classifier, "forward", capture)
    with torch.no_grad():
        model(_images(1, 64, seed=4), torch.eye(backbone.embed_dim))
    call = capture.calls[0]
    kv = call["kv"]
    total = kv[0][0].shape[2]
    assert total == int(cls_key) + 64 + 4 * 64
    inside = torch.zeros(total, dtype=torch.bool)
    inside[region] = True
    allowed = inside.clone()
    if cls_key:
        allowed[0] = cls_allowed
    bias = torch.full_like(call["bias"], float("-inf"))
    bias[..., allowed] = 0.0
    classify = capture.forward
    text = torch.eye(backbone.embed_dim)
    g = torch.Generator().manual_seed(0)

    def perturbed(mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        noise = [(torch.randn(k.shape, generator=g), torch.randn(v.shape, generator=g)) for k, v in kv]
        m = mask.view(1, 1, -1, 1)
        return [(torch.where(m, k + nk, k), torch.where(m, v + nv, v)) for (k, v), (nk, nv) in zip(kv, noise)]

    patches = torch.ones(total, dtype=torch.bool)
    patches[0] = not cls_key  # image tokens: everything but the global [CLS]
    with torch.no_grad():
        base = classify(backbone, call["cls_token"], kv, bias, text)
        outside = classify(backbone, call["cls_token"], perturbed(patches & ~inside), bias, text)
        within = classify(backbone, call["cls_token"], perturbed(inside), bias, text)
    torch.testing.assert_close(outside, base, atol=1e-6, rtol=0)
    assert (within - base).abs().max() > 1e-3


@pytest.mark.parametrize("cls_key", [False, True])
def test_logits_ignore_the_global_cls_key_unless_cls_key(make_model, monkeypatch, cls_key: bool) -> None:
    """Default: perturbing the global view's [CLS] key/value at the classification blocks (whatever the
    learned bias) leaves the logits unchanged; with ``cls_key=True`` it changes them."""
    model = make_model(slice_ratio=0.5, num_cls_blocks=2, classifier={"cls_key": cls_key}).eval()
    backbone = model.backbone
    images = _images(2, 64, seed=5)
    text = torch.eye(backbone.embed_dim)
    forward_views = backbone.forward_views

    def cls_kv_perturbed(views, tap_layers, cls_layer):
        feats = forward_views(views, tap_layers, cls_layer)
        g = torch.Generator().manual_seed(1)
        for k, v in feats.kv:
            k[:, :, 0] += torch.randn(k[:, :, 0].shape, generator=g)
            v[:, :, 0] += torch.randn(v[:, :, 0].shape, generator=g)
        return feats

    with torch.no_grad():
        base = model(images, text)["pred_logits"]
        monkeypatch.setattr(backbone, "forward_views", cls_kv_perturbed)
        after = model(images, text)["pred_logits"]
    if cls_key:
        assert (after - base).abs().max() > 1e-3
    else:
        assert torch.equal(after, base)


@pytest.mark.parametrize("cls_key", [False, True])
@pytest.mark.parametrize("decoupled", [True, False])
def test_attention_bias_layout(toy_backbone: CLIPBackbone, decoupled: bool, cls_key: bool) -> None:
    """Bias = [M_global on the global grid ; M_local gathered per slice] (``cls_key``: [0 ; ...] first)."""
    classifier = _classifier(toy_backbone, decoupled=decoupled, cls_key=cls_key)
    layout = Slicer(0.625, 32, 4).layout(64, 64)  # overlapping: 4 slices of 10×10 tokens on a 16×16 grid
    g = torch.Generator().manual_seed(0)
    visual = torch.randn(2, DIM, 16, 16, generator=g)
    queries = torch.randn(2, QUERIES, MASK_DIM, generator=g)
    with torch.no_grad():
        feats = classifier.attention_features(visual, (8, 8))
        bias = classifier.attention_bias(queries, feats, (16, 16), (8, 8), layout)
    a_local, a_global = feats
    assert a_local.shape == (2, 256, toy_backbone.heads, MASK_DIM)
    assert a_global.shape == ((2, 64, 2, MASK_DIM) if decoupled else a_local.shape)
    c = int(cls_key)
    assert bias.shape == (2, toy_backbone.heads, QUERIES, c + 64 + 4 * 100)
    if cls_key:
        assert torch.equal(bias[..., 0], torch.zeros_like(bias[..., 0]))
    m_local = torch.einsum("bqc,blnc->bnql", queries, a_local)
    if decoupled:
        m_global = torch.einsum("bqc,blnc->bnql", queries, a_global)
    else:
        grid = rearrange(m_local, "b n q (h w) -> b (n q) h w", h=16)
        m_global = rearrange(F.max_pool2d(grid, 2), "b (n q) h w -> b n q (h w)", q=QUERIES)
    torch.testing.assert_close(bias[..., c : c + 64], m_global, atol=1e-5, rtol=1e-5)
    for i, (y, x) in enumerate(layout.starts):
        local = rearrange(m_local, "b n q (h w) -> b n q h w", h=16)[..., y : y + 10, x : x + 10]
        part = bias[..., c + 64 + 100 * i : c + 64 + 100 * (i + 1)]
        torch.testing.assert_close(part, local.flatten(-2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls_key", [False, True])
def test_attention_bias_without_slices(toy_backbone: CLIPBackbone, cls_key: bool) -> None:
    classifier = _classifier(toy_backbone, cls_key=cls_key)
    visual = torch.randn(1, DIM, 8, 8)
    with torch.no_grad():
        feats = classifier.attention_features(visual, (8, 8))
        bias = classifier.attention_bias(torch.randn(1, QUERIES, MASK_DIM), feats, (8, 8), (8, 8), None)
    assert bias.shape == (1, toy_backbone.heads, QUERIES, int(cls_key) + 64)


@pytest.mark.parametrize("decoupled", [False, True])
def test_single_resolution_attention_uses_the_global_view_only(
    make_model, monkeypatch, decoupled: bool
) -> None:
    """``multi_grained=False`` (Table 2 rows without multi-grained masked attention, as SAN): at p = 0.5
    the keys are the global view's 64 patch tokens, and the logits do not depend on the slices' K/V."""
    model = make_model(
        slice_ratio=0.5, num_cls_blocks=2, classifier={"multi_grained": False, "decoupled": decoupled}
    ).eval()
    assert model.classifier.local_mlp is None if decoupled else model.classifier.global_mlp is None
    backbone = model.backbone
    capture = _Capture(model.classifier)
    monkeypatch.setattr(model.classifier, "forward", capture)
    images = _images(2, 64, seed=6)
    text = torch.eye(backbone.embed_dim)
    forward_views = backbone.forward_views

    def slice_kv_perturbed(views, tap_layers, cls_layer):
        feats = forward_views(views, tap_layers, cls_layer)
        g = torch.Generator().manual_seed(2)
        for k, v in feats.kv:
            k[2:] += torch.randn(k[2:].shape, generator=g)  # views 2.. are the slices of the 2 images
            v[2:] += torch.randn(v[2:].shape, generator=g)
        return feats

    with torch.no_grad():
        base = model(images, text)["pred_logits"]
        call = capture.calls[0]
        assert call["bias"].shape[-1] == 64 and all(k.shape[2] == 64 for k, _ in call["kv"])
        monkeypatch.setattr(backbone, "forward_views", slice_kv_perturbed)
        after = model(images, text)["pred_logits"]
    assert torch.equal(after, base)
