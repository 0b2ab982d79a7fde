"""The training-free family (issue 24): each method's last block is its equation, the switches reproduce
dense CLIP bit for bit, NACLIP's kernel is its code's, PAMR is the reference algorithm in bounded memory.

The equations are written out here from ``../shared/papers/training-free-facts.md`` §0-1 with plain tensor
algebra on the toy CLIP's own weights (random, seeded): ``Z = LN1(X)``, ``Q = ZW_q + b_q`` …, per head
``A``, ``O = concat_h(A_h V_h) W_o + b_o``, then the method's residual / FFN.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mrovseg.config import CONF_DIR
from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.training_free import NACLIP, SCLIP, ClearCLIP, DenseCLIP, LastBlockCLIP
from mrovseg.model.training_free.last_block import gaussian_kernel
from mrovseg.model.training_free.pamr import pamr, pamr_weights

GRID = (6, 5)  # a non-square patch grid: 24×20 windows of the toy CLIP (patch 4)


def _tokens(backbone: CLIPBackbone, seed: int = 0, n: int = 2) -> torch.Tensor:
    """Random tokens ``X`` entering the last block, ``(n, 1 + 6·5, D)`` (scaled like a residual stream)."""
    g = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(n, 1 + GRID[0] * GRID[1], backbone.width, generator=g)


def _omega(grid: tuple[int, int], sigma: float) -> torch.Tensor:
    """Ω written out pair by pair: exp(−‖p_i − p_j‖² / 2σ²) between patches, 0 on [CLS]'s row and column."""
    gh, gw = grid
    out = torch.zeros(1 + gh * gw, 1 + gh * gw)
    for i in range(gh * gw):
        for j in range(gh * gw):
            (ri, ci), (rj, cj) = divmod(i, gw), divmod(j, gw)
            out[1 + i, 1 + j] = math.exp(-((ri - rj) ** 2 + (ci - cj) ** 2) / (2 * sigma**2))
    return out


def direct_last_block(
    bb: CLIPBackbone, x: torch.Tensor, attention: str, sigma: float | None, residual: bool, ffn: bool
) -> torch.Tensor:
    """The last block of each method, from the equations (not from the package's code)."""
    blk = bb.blocks[-1]
    attn = blk.attn
    d_model, heads = x.shape[-1], attn.num_heads
    d = d_model // heads
    z = blk.ln_1(x)
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q, k, v = (
        z @ w[i * d_model : (i + 1) * d_model].T + b[i * d_model : (i + 1) * d_model] for i in range(3)
    )
    q, k, v = (t.view(x.shape[0], x.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))
    s = d**-0.5
    omega = _omega(GRID, sigma) if sigma is not None else 0.0

    def softmax(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.softmax(s * a @ c.transpose(-1, -2) + omega, dim=-1)

    eye = torch.eye(x.shape[1])
    a = {
        "qk": lambda: softmax(q, k),
        "qq": lambda: softmax(q, q),
        "kk": lambda: softmax(k, k),
        "qq+kk": lambda: softmax(q, q) + softmax(k, k),
        "value": lambda: eye,
    }[attention]()
    o = (a @ v).transpose(1, 2).reshape(x.shape) @ attn.out_proj.weight.T + attn.out_proj.bias
    y = x + o if residual else o
    return y + blk.mlp(blk.ln_2(y)) if ffn else y


METHODS = {  # class, its equation's (attention, σ, residual, FFN)
    "sclip": (SCLIP, ("qq+kk", None, True, True)),
    "clearclip": (ClearCLIP, ("qq", None, False, False)),
    "naclip": (NACLIP, ("kk", 5.0, False, False)),
    "dense_clip": (DenseCLIP, ("value", None, False, False)),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_methods_last_block_is_its_equation(toy_backbone: CLIPBackbone, name: str) -> None:
    cls, form = METHODS[name]
    model = cls(toy_backbone)
    x = _tokens(toy_backbone)
    with torch.no_grad():
        got = model.last_block(x, GRID)
        expected = direct_last_block(toy_backbone, x, *form)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "switches",
    [
        ("qk", None, True, True),  # CLIP's own block
        ("qk", None, False, False),  # ClearCLIP's shipped default (model_type='vanilla')
        ("qq+kk", None, False, False),
        ("kk", 2.0, True, False),
        ("qq", 1.5, False, True),
        ("value", None, True, True),
    ],
)
def test_any_switch_combination_is_its_equation(toy_backbone: CLIPBackbone, switches: tuple) -> None:
    attention, sigma, residual, ffn = switches
    model = LastBlockCLIP(toy_backbone, attention=attention, kernel_sigma=sigma, residual=residual, ffn=ffn)
    x = _tokens(toy_backbone, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(
            model.last_block(x, GRID), direct_last_block(toy_backbone, x, *switches), atol=2e-5, rtol=1e-5
        )


def test_qk_with_residual_and_ffn_is_clips_own_last_block(toy_backbone: CLIPBackbone) -> None:
    x = _tokens(toy_backbone, seed=2)
    with torch.no_grad():
        got = LastBlockCLIP(toy_backbone).last_block(x, GRID)
        expected, _, _ = toy_backbone.block_forward(toy_backbone.blocks[-1], x)
    assert torch.equal(got, expected)


def test_patch_embeddings_are_the_head_on_the_rebuilt_block(toy_backbone: CLIPBackbone) -> None:
    """F = normalise(LN_post(Y) W_proj) on the patch rows; blocks 1 … L−1 are CLIP's."""
    images = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(3))
    model = NACLIP(toy_backbone)
    depth = toy_backbone.depth
    with torch.no_grad():
        feats = toy_backbone.forward_views(toy_backbone.normalize(images), [depth - 1], depth)
        y = direct_last_block(toy_backbone, feats.layers[depth - 1], "kk", 5.0, False, False)
        expected = F.normalize(toy_backbone.head(y[:, 1:]), dim=-1)
        got = model.patch_embeddings(images)
    assert got.shape == (2, toy_backbone.embed_dim, *GRID)
    torch.testing.assert_close(rearrange(got, "b e h w -> b (h w) e"), expected, atol=2e-5, rtol=1e-5)


# ---------------------------------------------------------------- dense CLIP in the family's terms
def _old_dense_clip(
    bb: CLIPBackbone, images: torch.Tensor, text: torch.Tensor, residual: bool
) -> torch.Tensor:
    """DenseCLIP.semantic_scores as the stand-alone class computed it before the family existed."""
    feats = bb.forward_views(bb.normalize(images), tap_layers=[bb.depth - 1], cls_layer=bb.depth)
    y = bb.value_path(feats.layers[bb.depth - 1], residual=residual)
    emb = F.normalize(bb.head(y[:, 1:]).float(), dim=-1)
    emb = rearrange(emb, "b (h w) e -> b e h w", h=feats.grid[0], w=feats.grid[1])
    return (torch.einsum("behw,ke->bkhw", emb, text.float()) * bb.logit_scale).softmax(dim=1)


@pytest.mark.parametrize("residual", [False, True])
def test_switches_reproduce_dense_clip_bit_for_bit(
    toy_backbone: CLIPBackbone, text_embeddings: torch.Tensor, residual: bool
) -> None:
    images = torch.rand(3, 3, 32, 48, generator=torch.Generator().manual_seed(4))
    switches = LastBlockCLIP(
        toy_backbone, attention="value", residual=residual, ffn=residual, merge="probabilities"
    )
    with torch.no_grad():
        old = _old_dense_clip(toy_backbone, images, text_embeddings, residual)
        dense = DenseCLIP(toy_backbone, residual=residual).semantic_scores(images, text_embeddings)
        family = switches.semantic_scores(images, text_embeddings)
    assert torch.equal(dense, old) and torch.equal(family, old)
    scores = torch.rand(3, 10, 12)  # nothing happens after the windows are merged
    assert DenseCLIP(toy_backbone).refine_scores(torch.rand(3, 10, 12), scores) is scores


# ---------------------------------------------------------------- NACLIP's kernel, scores after merging
def test_gaussian_kernel_is_naclips_windowed_construction() -> None:
    """NACLIP builds Ω by convolving one-hot patch maps with a (2h−1)×(2w−1) Gaussian window ('same'
    padding): that is the Gaussian of the distance over the whole grid."""
    gh, gw, sigma = 4, 7, 1.7
    ys, xs = torch.meshgrid(
        torch.arange(2 * gh - 1) - (gh - 1.0), torch.arange(2 * gw - 1) - (gw - 1.0), indexing="ij"
    )
    window = torch.exp(-(ys**2 + xs**2) / (2 * sigma**2))
    one_hot = torch.eye(gh * gw).view(gh * gw, 1, gh, gw)
    conv = F.conv2d(one_hot, window[None, None], padding="same").view(gh * gw, gh * gw)
    kernel = gaussian_kernel((gh, gw), sigma)
    torch.testing.assert_close(kernel[1:, 1:], conv, atol=1e-6, rtol=1e-6)
    assert kernel[0].abs().sum() == 0 and kernel[:, 0].abs().sum() == 0
    assert torch.all(kernel[1:, 1:].diagonal() == 1.0)


def test_refine_scores_softmax_threshold_and_pamr(toy_backbone: CLIPBackbone) -> None:
    g = torch.Generator().manual_seed(5)
    image, cos = torch.rand(3, 12, 16, generator=g), torch.rand(4, 12, 16, generator=g) * 0.4
    model = SCLIP(toy_backbone)
    torch.testing.assert_close(model.refine_scores(image, cos.clone()), (40.0 * cos).softmax(dim=0))
    sure = (40.0 * cos).softmax(dim=0).amax(dim=0) >= 0.5
    thresholded = SCLIP(toy_backbone, prob_threshold=0.5).refine_scores(image, cos.clone()).argmax(dim=0)
    assert torch.all(thresholded[~sure] == 0) and torch.equal(
        thresholded[sure], (40.0 * cos).softmax(dim=0).argmax(dim=0)[sure]
    )
    refined = SCLIP(toy_backbone, post="pamr", pamr_dilations=(1, 2)).refine_scores(image, cos.clone())
    guide = toy_backbone.normalize(image[None])[0]
    torch.testing.assert_close(refined, (40.0 * pamr(guide, cos.clone(), 10, (1, 2))).softmax(dim=0))


# ---------------------------------------------------------------- PAMR
def reference_pamr(image: torch.Tensor, scores: torch.Tensor, steps: int, dilations: tuple) -> torch.Tensor:
    """PAMR as described (Araslanov & Roth 2020; SCLIP's / NACLIP's ``pamr.py``), materialising every
    neighbour of every class at once: ``(K, P, H, W)``."""
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    h, w = image.shape[-2:]

    def around(x: torch.Tensor, with_centre: bool) -> torch.Tensor:  # (C, H, W) → (C, P, H, W)
        out = []
        for d in dilations:
            p = F.pad(x[None], (d, d, d, d), mode="replicate")[0]
            for dy, dx in offsets:
                if (dy, dx) != (0, 0) or with_centre:
                    out.append(p[:, d + dy * d : d + dy * d + h, d + dx * d : d + dx * d + w])
        return torch.stack(out, dim=1)

    std = around(image, True).std(dim=1, keepdim=True)
    aff = -(image[:, None] - around(image, False)).abs() / (1e-8 + 0.1 * std)
    weights = aff.mean(dim=0, keepdim=True).softmax(dim=1)  # (1, P, H, W)
    for _ in range(steps):
        scores = (around(scores, False) * weights).sum(dim=1)
    return scores


def test_pamr_is_the_reference_in_chunks_of_classes() -> None:
    g = torch.Generator().manual_seed(6)
    image, scores = torch.rand(3, 21, 26, generator=g), torch.rand(7, 21, 26, generator=g)
    expected = reference_pamr(image, scores.clone(), 4, (1, 3))
    one_class_at_a_time = pamr(image, scores.clone(), 4, (1, 3), chunk_bytes=4 * 21 * 26)
    all_at_once = pamr(image, scores.clone(), 4, (1, 3))
    torch.testing.assert_close(one_class_at_a_time, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(all_at_once, expected, atol=1e-5, rtol=1e-5)
    weights = pamr_weights(image, (8, 16))
    assert weights.shape == (16, 21, 26)
    torch.testing.assert_close(weights.sum(dim=0), torch.ones(21, 26))


# ---------------------------------------------------------------- options and configs
def test_bad_switches_are_errors(toy_backbone: CLIPBackbone) -> None:
    with pytest.raises(ValueError, match="attention must be one of"):
        LastBlockCLIP(toy_backbone, attention="q+k")
    with pytest.raises(ValueError, match="kernel_sigma needs a softmax"):
        LastBlockCLIP(toy_backbone, attention="value", kernel_sigma=5.0)
    with pytest.raises(ValueError, match="post must be"):
        NACLIP(toy_backbone, post="crf")
    with pytest.raises(TypeError, match="adapter"):
        NACLIP(toy_backbone, adapter=1)


@pytest.mark.parametrize("name", ["sclip", "clearclip", "naclip"])
def test_each_config_states_its_methods_defaults(toy_backbone: CLIPBackbone, name: str) -> None:
    """``conf/model/<name>.yaml`` lists every switch, at the class's own values (the docstring's facts)."""
    cfg = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    cls = METHODS[name][0]
    assert set(cfg) - {"_target_"} == set(LastBlockCLIP.DEFAULTS)
    from_config, plain = instantiate(cfg, backbone=toy_backbone), cls(toy_backbone)
    assert type(from_config) is cls
    assert from_config.extra_repr() == plain.extra_repr()
    assert from_config.pamr_dilations == plain.pamr_dilations and from_config.tau == plain.tau


def test_the_family_reaches_open_clip_only_through_clip_backbone() -> None:
    """As dense CLIP did (issue 21): no open_clip block internals outside ``clip_backbone.py``."""
    import re

    import mrovseg

    folder = Path(mrovseg.__file__).parent / "model" / "training_free"
    internals = re.compile(r"\.(ls_1|ls_2|ln_1|ln_2|ln_post|resblocks|in_proj_weight|out_proj|attn|mlp)\b")
    for path in folder.glob("*.py"):
        text = path.read_text()
        assert not internals.search(text) and not re.search(r"\b(block|last|blk)\.", text), path.name
