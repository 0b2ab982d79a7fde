"""OVSeg baseline: crops, mask prompts, the ensemble and caption mining (issue 13, "Must show")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrovseg.constants import REPO_ROOT
from mrovseg.data.captions import extract_nouns, toy_caption
from mrovseg.model.inference import semantic_inference
from mrovseg.model.ovseg import (
    MaskPromptCLIP,
    OVSeg,
    crop_regions,
    ensemble_probs,
    mask_boxes,
    probs_to_logits,
)
from mrovseg.model.ovseg.mining import match_nouns

TINY_HEAD = {"dim": 32, "mask_dim": 16, "num_queries": 5, "num_layers": 2, "num_heads": 2, "ffn_dim": 64,
             "upsample": 1, "class_hidden": 32}  # fmt: skip


def _clip_embedding(backbone, images: torch.Tensor) -> torch.Tensor:
    """open_clip's own image embedding of ``(N, 3, 32, 32)`` images in [0, 1]."""
    with torch.no_grad():
        return F.normalize(backbone.clip.encode_image(backbone.normalize(images)).float(), dim=-1)


def test_mask_boxes_tight_and_empty():
    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    boxes, valid = mask_boxes(masks)
    assert valid.tolist() == [True, False]
    assert boxes[0].tolist() == [3.0, 2.0, 9.0, 5.0]
    assert boxes[1].tolist() == [0.0, 0.0, 12.0, 10.0]


def test_crop_of_same_size_box_is_exact():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 64, generator=g)
    masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    masks[0, 8:40, 16:48] = True
    masks[0, 20, 30] = False  # a hole: the box stays the same
    crops, crop_masks = crop_regions(images, masks, torch.tensor([1]), 32)
    torch.testing.assert_close(crops[0], images[1, :, 8:40, 16:48], atol=1e-5, rtol=0)
    assert torch.equal(crop_masks[0], masks[0, 8:40, 16:48])


def test_blank_patches_get_prompts_others_keep_clip(toy_backbone, monkeypatch):
    torch.manual_seed(0)
    region = MaskPromptCLIP(toy_backbone, prompt_depth=3)
    images = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 32, 32, dtype=torch.bool)
    mask[0, 0:12, 0:32] = True  # patch rows 0-2 have foreground (row 2 partly: pixels 8-11)
    mask[0, 12, 5] = True  # a single pixel: patch (3, 1) is not blank
    mask[0, 31, 31] = True  # ... nor (7, 7); the mask's box is the whole image (crop = image)
    crops, blank = region.prepare(toy_backbone, images, mask, torch.tensor([0]))
    expected_blank = torch.ones(8, 8, dtype=torch.bool)
    expected_blank[:3] = False
    expected_blank[3, 1] = False
    expected_blank[7, 7] = False
    assert torch.equal(blank[0], expected_blank.flatten())
    # blank-filled with CLIP's mean colour: normalised value 0 outside the mask
    assert crops[0][:, ~mask[0]].abs().max() < 1e-6

    tokens = region.patch_tokens(toy_backbone, crops, blank)
    plain = region.patch_tokens(toy_backbone, crops, None)
    b = blank[0]
    torch.testing.assert_close(tokens[0, b], region.prompts[0][b].expand_as(tokens[0, b]))
    torch.testing.assert_close(tokens[0, ~b], plain[0, ~b])
    assert not torch.allclose(plain[0, b], tokens[0, b])

    seen: list[torch.Tensor] = []
    original = toy_backbone.block_forward

    def record(block, x):
        seen.append(x.detach().clone())
        return original(block, x)

    monkeypatch.setattr(toy_backbone, "block_forward", record)
    region.encode(toy_backbone, crops, blank)
    assert len(seen) == 3
    for d in (1, 2):  # deep prompts: blank tokens at the input of blocks 1 and 2 are P[d]; [CLS] kept
        torch.testing.assert_close(seen[d][0, 1:][b], region.prompts[d][b])
        assert not torch.allclose(seen[d][0, 1:][~b], region.prompts[d][~b])

    seen.clear()
    shallow = MaskPromptCLIP(toy_backbone, prompt_depth=1)
    shallow.encode(toy_backbone, crops, blank)
    assert shallow.prompts.shape[0] == 1
    assert not torch.allclose(seen[1][0, 1:][b], seen[1][0, 1:][b][:1].expand_as(seen[1][0, 1:][b]))


def test_zero_prompts_full_mask_equals_clip_embedding(toy_backbone):
    g = torch.Generator().manual_seed(3)
    region = MaskPromptCLIP(toy_backbone, prompt_depth=3, prompt_init_std=0.0)
    assert region.prompts.abs().max() == 0
    # image at CLIP's size: the crop is the image itself
    images = torch.rand(2, 3, 32, 32, generator=g)
    masks = torch.ones(2, 32, 32, dtype=torch.bool)
    emb = region(toy_backbone, images, masks, torch.tensor([0, 1]))
    torch.testing.assert_close(emb, _clip_embedding(toy_backbone, images), atol=1e-5, rtol=1e-4)
    # a larger image: the whole-image crop resized (bicubic) to CLIP's size
    big = torch.rand(1, 3, 64, 64, generator=g)
    emb = region(toy_backbone, big, torch.ones(1, 64, 64, dtype=torch.bool), torch.tensor([0]))
    resized = F.interpolate(big, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    torch.testing.assert_close(emb, _clip_embedding(toy_backbone, resized), atol=1e-4, rtol=1e-3)


def _encode_as_before(region, backbone, crops, blank):
    """``MaskPromptCLIP.encode`` as it was written inline (open_clip's tower read directly) before it ran
    through ``CLIPBackbone``'s methods (issue 21): the frozen path must give the same bits."""
    visual = backbone.visual
    x = F.conv2d(crops, visual.conv1.weight, stride=backbone.patch_size).flatten(2).transpose(1, 2)
    x = torch.where(blank[..., None], region.prompts[0], x)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
    for i, block in enumerate(backbone.blocks):
        if 0 < i < region.prompt_depth:
            x = torch.cat([x[:, :1], torch.where(blank[..., None], region.prompts[i], x[:, 1:])], dim=1)
        x = backbone.block_forward(block, x)[0]
    return F.normalize(visual.ln_post(x[:, 0]) @ visual.proj, dim=-1)


def test_region_encoder_is_bit_identical_to_the_inline_tower(toy_backbone):
    torch.manual_seed(0)
    region = MaskPromptCLIP(toy_backbone, prompt_depth=3)
    images = torch.rand(2, 3, 48, 40)
    masks = torch.zeros(3, 48, 40, dtype=torch.bool)
    masks[0, 4:30, 6:20] = masks[1, 10:12, 3:39] = masks[2, :, 20:] = True
    with torch.no_grad():
        crops, blank = region.prepare(toy_backbone, images, masks, torch.tensor([0, 1, 1]))
        expected = _encode_as_before(region, toy_backbone, crops, blank)
        assert torch.equal(region.encode(toy_backbone, crops, blank), expected)


def test_finetune_encodes_with_the_copied_tower(toy_backbone):
    """``finetune``: the copy (stem, blocks, head) encodes the regions, CLIP's own tower is only read."""
    torch.manual_seed(0)
    frozen = MaskPromptCLIP(toy_backbone, prompt_depth=2)
    tuned = MaskPromptCLIP(toy_backbone, prompt_depth=2, finetune=True)
    tuned.prompts.data.copy_(frozen.prompts)
    images, masks = torch.rand(1, 3, 32, 32), torch.zeros(1, 32, 32, dtype=torch.bool)
    masks[0, 5:25, 8:20] = True
    index = torch.tensor([0])
    with torch.no_grad():
        reference = frozen(toy_backbone, images, masks, index)
        torch.testing.assert_close(tuned(toy_backbone, images, masks, index), reference)  # a copy of it
        for name, param in tuned.visual.named_parameters():
            if name.startswith(("transformer.resblocks.2.", "ln_post.", "proj")):  # last block, head
                before = tuned(toy_backbone, images, masks, index)
                param.add_(0.5 * torch.randn_like(param))
                assert not torch.allclose(tuned(toy_backbone, images, masks, index), before), name
        # CLIP's own tower was only read: the prompt-only encoder still gives what it gave
        torch.testing.assert_close(frozen(toy_backbone, images, masks, index), reference, rtol=0, atol=0)


def test_ovseg_reaches_open_clip_only_through_clip_backbone():
    """Issue 21: the region encoder and the dense baseline name no open_clip internals (CLIPBackbone's job)."""
    import re

    import mrovseg

    model_dir = Path(mrovseg.__file__).parent / "model"
    internals = re.compile(
        r"\b(visual|tower)\.\w|\.(conv1|class_embedding|positional_embedding|ln_pre|ln_post|ln_1|ln_2|"
        r"resblocks|transformer|in_proj_weight|out_proj)\b"
    )
    files = [model_dir / "ovseg" / f for f in ("mask_prompt_clip.py", "ovseg.py", "mining.py")]
    files.append(model_dir / "training_free" / "dense_clip.py")
    offenders = {f.name: m.group(0) for f in files if (m := internals.search(f.read_text()))}
    assert offenders == {}


def test_ensemble_is_ovseg_geometric_rule():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, generator=g)
    p_mf = logits.softmax(-1)[..., :-1]
    p_clip = torch.randn(2, 4, 5, generator=g).softmax(-1)
    valid = torch.tensor([[True, False, True, True], [True, True, False, True]])
    probs = ensemble_probs(p_mf, p_clip, valid, 0.7)
    expected = p_mf.pow(0.3) * torch.where(valid[..., None], p_clip, torch.ones_like(p_clip)).pow(0.7)
    torch.testing.assert_close(probs, expected)
    # the logits reproduce the ensemble through semantic_inference's softmax (non-empty proposals)
    got = probs_to_logits(probs).softmax(-1)[..., :-1]
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-6, rtol=1e-5)
    clip_only = ensemble_probs(p_mf, p_clip, valid, 0.0)
    torch.testing.assert_close(clip_only, p_clip * valid[..., None])


def test_ovseg_forward_train_and_eval(toy_backbone, text_embeddings):
    torch.manual_seed(0)
    model = OVSeg(toy_backbone, head=TINY_HEAD, mask_thr=0.0)  # threshold 0: every proposal non-empty
    images = torch.rand(2, 3, 64, 64)
    model.train()
    out = model(images, text_embeddings)
    assert out["pred_logits"].shape == (2, 5, 4) and out["pred_masks"].shape == (2, 5, 32, 32)
    assert len(out["aux_outputs"]) == 1
    model.eval()
    with torch.no_grad():
        before = model.num_region_passes
        out = model(images, text_embeddings)
        assert model.num_region_passes - before == 10  # one CLIP pass per proposal
        scores = model.semantic_scores(images, text_embeddings)
    assert scores.shape == (2, 3, 32, 32)
    expected = torch.einsum("bnk,bnhw->bkhw", out["pred_probs"], out["pred_masks"].sigmoid())
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(
        scores, semantic_inference(out["pred_logits"], out["pred_masks"]), atol=1e-5, rtol=1e-4
    )
    trainable = {id(p) for p in model.trainable_parameters()}
    assert not any(id(p) in trainable for p in model.backbone.parameters())
    assert id(model.region.prompts) in trainable


def test_mining_pairs_each_noun_with_the_proposal_clip_prefers():
    e = torch.eye(4)
    regions = torch.stack([e[0], F.normalize(e[1] + 0.5 * e[2], dim=0), e[2], e[3]])
    region_image = torch.tensor([0, 0, 0, 1])
    nouns = torch.stack([F.normalize(e[2] + 0.1 * e[1], dim=0), e[0], e[3], e[3]])
    noun_image = torch.tensor([0, 0, 0, 1])
    noun_idx, region_idx = match_nouns(regions, region_image, nouns, noun_image)
    # noun 0 prefers region 2 (not 1, which is less similar); noun 1 → region 0;
    # noun 2 (image 0) must take the best of ITS image, not region 3 of image 1; noun 3 → region 3
    assert noun_idx.tolist() == [0, 1, 2, 3]
    assert region_idx[:2].tolist() == [2, 0] and region_idx[3].item() == 3
    assert region_image[region_idx[2]].item() == 0
    noun_idx, region_idx = match_nouns(regions, region_image, nouns, noun_image, min_similarity=0.5)
    assert noun_idx.tolist() == [0, 1, 3]


def test_caption_nouns_and_toy_caption_match_pretraining_script():
    assert extract_nouns("a photo of a red circle, a blue ring and a red circle.") == [
        "red circle",
        "blue ring",
    ]
    assert extract_nouns("an image of the background.") == ["background"]
    spec = importlib.util.spec_from_file_location("pretrain", REPO_ROOT / "scripts" / "pretrain_toy_clip.py")
    if spec is None or spec.loader is None:
        pytest.skip("scripts/pretrain_toy_clip.py not found")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for seed, names in enumerate([[], ["red circle"], ["red circle", "blue ring", "green cross"]]):
        a = toy_caption(names, np.random.default_rng(seed))
        b = script.caption(names, np.random.default_rng(seed))
        assert a == b
        assert sorted(extract_nouns(a)) == sorted(names or ["background"])


def test_clip_passes_one_per_region_plus_one_per_window(toy_backbone, text_embeddings, make_model):
    from mrovseg.benchmarking.ovseg_efficiency import clip_passes_per_image

    torch.manual_seed(0)
    ovseg = OVSeg(toy_backbone, head=TINY_HEAD, mask_thr=0.0).eval()  # every proposal non-empty
    image = torch.rand(3, 64, 96)  # two 64² windows
    passes = clip_passes_per_image(ovseg, image, text_embeddings, window=64)
    assert passes == {"windows": 2, "trunk_passes": 2, "region_passes": 10, "clip_passes": 12}
    mrovseg = make_model().eval()
    passes = clip_passes_per_image(mrovseg, image, text_embeddings, window=64)
    assert passes == {"windows": 2, "trunk_passes": 2, "region_passes": 0, "clip_passes": 2}
