"""MROVSeg's optional evaluation-time ensemble with the frozen CLIP on each predicted mask's crop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mrovseg.model.inference import semantic_inference
from mrovseg.model.region_ensemble import ensembled, region_probs


def _clip_probs(backbone, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """open_clip's own class probabilities of whole ``(N, 3, 32, 32)`` images (the reference)."""
    with torch.no_grad():
        emb = F.normalize(backbone.clip.encode_image(backbone.normalize(images)).float(), dim=-1)
    return (backbone.logit_scale * emb @ text.T).softmax(dim=-1)


def _fixed_output(model, masks: torch.Tensor, logits: torch.Tensor):
    """Makes ``model``'s forward return the given mask and class logits (the classifier under test is the
    ensemble, not the network)."""
    model.forward = lambda images, text: {"pred_logits": logits, "pred_masks": masks, "aux_outputs": []}


def test_off_by_default_and_state_dict_unchanged(make_model, text_embeddings):
    plain, ensembled_model = make_model(seed=0).eval(), make_model(seed=0, region_ensemble=0.5).eval()
    assert plain.region_ensemble == 0
    assert plain.state_dict().keys() == ensembled_model.state_dict().keys()  # checkpoints load either way
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = plain(images, text_embeddings)
        torch.testing.assert_close(
            plain.semantic_scores(images, text_embeddings),
            semantic_inference(out["pred_logits"], out["pred_masks"]),
        )


@pytest.mark.parametrize("weight", [0.3, 0.7, 1.0])
def test_full_masks_ensemble_with_clip_on_the_whole_image(make_model, toy_backbone, text_embeddings, weight):
    # every mask covers the whole 32² window: each region crop is the window itself, so CLIP's region scores
    # are open_clip's probabilities of the image, the same for each of the 5 queries
    model = make_model(region_ensemble=weight).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 32, 32, generator=g)
    masks = torch.full((2, 5, 8, 8), 6.0)
    logits = torch.randn(2, 5, 4, generator=g)
    _fixed_output(model, masks, logits)
    p_clip = _clip_probs(toy_backbone, images, text_embeddings)[:, None]  # (2, 1, 3)
    p_mf = logits.softmax(-1)[..., :-1]
    expected = torch.einsum("bnk,bnhw->bkhw", p_mf.pow(1 - weight) * p_clip.pow(weight), masks.sigmoid())
    with torch.no_grad():
        got = model.semantic_scores(images, text_embeddings)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_empty_masks_keep_the_classifier_alone(make_model, text_embeddings):
    model = make_model(region_ensemble=0.4).eval()
    images = torch.rand(1, 3, 32, 32)
    masks = torch.full((1, 5, 8, 8), -6.0)  # sigmoid < 0.5 everywhere: no pixel, no crop for CLIP
    logits = torch.randn(1, 5, 4)
    _fixed_output(model, masks, logits)
    expected = torch.einsum("bnk,bnhw->bkhw", logits.softmax(-1)[..., :-1].pow(0.6), masks.sigmoid())
    torch.testing.assert_close(model.semantic_scores(images, text_embeddings), expected)


def test_region_probs_crops_only_non_empty_masks():
    images = torch.rand(2, 3, 16, 16)
    masks = torch.full((2, 3, 4, 4), -5.0)
    masks[0, 1, :2, :2] = masks[1, 2] = 5.0
    seen: list[tuple[torch.Size, list[int]]] = []

    def region_logits(binary, image_index):
        seen.append((binary.shape, image_index.tolist()))
        return torch.tensor([[0.0, 0.0], [2.0, 0.0]])

    p_clip, valid = region_probs(images, masks, 0.5, region_logits)
    assert valid.tolist() == [[False, True, False], [False, False, True]]
    assert seen == [(torch.Size([2, 16, 16]), [0, 1])]
    torch.testing.assert_close(p_clip[1], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(p_clip[5], torch.tensor([2.0, 0.0]).softmax(0))
    assert p_clip[0].tolist() == [1.0, 1.0]  # empty proposals: 1 (the classifier's score alone)
    # no mask with a pixel anywhere: CLIP is never called and the classifier's scores are kept (to 1 − λ)
    logits = torch.randn(2, 3, 3)
    never = lambda binary, image_index: pytest.fail("CLIP called without a region")  # noqa: E731
    probs, valid = ensembled(images, logits, torch.full((2, 3, 4, 4), -5.0), 0.5, 0.5, never)
    assert not valid.any()
    torch.testing.assert_close(probs, logits.softmax(-1)[..., :-1].sqrt())


@pytest.mark.parametrize(
    "options", [{"region_ensemble": 1.5}, {"region_ensemble": -0.1}, {"region_mask_thr": 1.0}]
)
def test_bad_settings_raise(make_model, options):
    with pytest.raises(ValueError, match="region_ensemble must be in"):
        make_model(**options)


def test_bf16_evaluation_runs_the_crops_too(make_backbone, text_embeddings):
    from mrovseg.model.mrovseg import MROVSeg
    from mrovseg.serving.precision import precision_context, prepare_model
    from tests.conftest import TINY_ADAPTER

    torch.manual_seed(0)
    backbone = make_backbone()  # its own CLIP: bf16 casts the weights in place (the shared one stays fp32)
    model = MROVSeg(backbone, 0.5, 32, 1, adapter=TINY_ADAPTER, region_ensemble=0.2).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        fp32 = model.semantic_scores(images, text_embeddings)
        prepare_model(model, "bf16")  # the frozen CLIP's weights in bf16, as precision=bf16 does
        with precision_context("bf16", "cpu"):
            bf16 = model.semantic_scores(images, text_embeddings).float()
    torch.testing.assert_close(bf16, fp32, atol=0.05, rtol=0.05)
