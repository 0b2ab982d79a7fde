"""OVSeg's training module: stage 1 then prompt tuning; CLIP stays untouched (issue 13)."""

from __future__ import annotations

import copy
from functools import partial

import lightning as L
import pytest
import torch

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.toy_mask_caption_datamodule import ToyMaskCaptionDataModule
from mrovseg.model.criterion import SetCriterion
from mrovseg.model.matcher import HungarianMatcher
from mrovseg.model.ovseg import OVSeg
from mrovseg.training.ovseg import OVSegModule

TINY_HEAD = {"dim": 32, "mask_dim": 16, "num_queries": 6, "num_layers": 2, "num_heads": 2, "ffn_dim": 64,
             "upsample": 1, "class_hidden": 32}  # fmt: skip


def _module(backbone, region=None, **kwargs) -> OVSegModule:
    torch.manual_seed(0)
    model = OVSeg(backbone, head=TINY_HEAD, region=region, mask_thr=0.5)
    criterion = SetCriterion(HungarianMatcher(num_points=64), num_points=64)
    return OVSegModule(
        model,
        criterion,
        templates=["{}"],
        window=64,
        optimizer=partial(torch.optim.AdamW, lr=1e-3, weight_decay=1e-4),
        **kwargs,
    )


def _datamodule() -> ToyMaskCaptionDataModule:
    return ToyMaskCaptionDataModule(
        num_train=4, num_val=1, num_test=1, batch_size=2, eval_size=(64, 64), eval_num_objects=(1, 3)
    )


def _compact_proposals(module: OVSegModule) -> None:
    """Stage-1 masks that are compact blobs (a random head gives speckle without blank patches)."""
    original = module.model.proposals

    def proposals(images, text):
        outs = original(images, text)
        b, n, h, w = outs[-1]["pred_masks"].shape
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        centres = torch.linspace(4, h - 4, n)
        blobs = torch.stack([6.0 - ((yy - c) ** 2 + (xx - c) ** 2).sqrt() for c in centres])
        outs[-1]["pred_masks"] = blobs.expand(b, -1, -1, -1)
        return outs

    module.model.proposals = proposals


@pytest.mark.parametrize("source", ["gt", "captions"])
def test_training_steps_tune_prompts_and_leave_clip_unchanged(toy_backbone, source, tmp_path):
    ckpt = tmp_path / "stage1.ckpt"
    module = _module(
        toy_backbone, proposal_steps=1, prompt_source=source, prompt_warmup=1, dedupe_nouns=True,
        stage1_checkpoint=str(ckpt),
    )  # fmt: skip
    if source == "captions":
        _compact_proposals(module)
    clip_before = copy.deepcopy(toy_backbone.state_dict())
    head_before = copy.deepcopy(module.model.head.state_dict())
    prompts_before = module.model.region.prompts.detach().clone()
    trainer = L.Trainer(
        max_steps=3, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, datamodule=_datamodule())
    for key, value in toy_backbone.state_dict().items():
        assert torch.equal(value, clip_before[key]), f"CLIP weight {key} changed"
    # step 0 trained stage 1; steps 1-2 the prompts (stage 1 then frozen)
    assert not torch.equal(module.model.region.prompts.detach(), prompts_before)
    assert any(not torch.equal(v, head_before[k]) for k, v in module.model.head.state_dict().items())
    assert ckpt.is_file()  # written when stage 1 ended, for branching
    optimised = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert not any(id(p) in optimised for p in toy_backbone.parameters())


def test_prompt_phase_leaves_stage1_unchanged(toy_backbone):
    module = _module(toy_backbone, proposal_steps=0, prompt_source="gt", prompt_warmup=1)
    head_before = copy.deepcopy(module.model.head.state_dict())
    trainer = L.Trainer(
        max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(module, datamodule=_datamodule())
    for k, v in module.model.head.state_dict().items():
        assert torch.equal(v, head_before[k]), k


def test_finetune_trains_the_copied_tower_and_leaves_clip_unchanged(toy_backbone):
    """Issue 21: with ``region.finetune`` the regions go through the copy of CLIP's image tower (stem,
    blocks and head, not CLIP's own blocks and head): one prompt-tuning step gives every copied block a
    non-zero gradient, and the frozen CLIP's weights stay as they were."""
    module = _module(toy_backbone, region={"finetune": True}, proposal_steps=0, prompt_warmup=1)
    copied = module.model.region.visual
    clip_before = copy.deepcopy(toy_backbone.state_dict())
    copy_before = copy.deepcopy(copied.state_dict())
    grads: dict[str, float] = {}

    class RecordGradients(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            for name, p in copied.named_parameters():
                grads[name] = 0.0 if p.grad is None else float(p.grad.abs().sum())

    trainer = L.Trainer(
        max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", callbacks=[RecordGradients()],
    )  # fmt: skip
    trainer.fit(module, datamodule=_datamodule())
    assert copied is not toy_backbone.visual
    for i in range(toy_backbone.depth):
        block_grad = sum(v for k, v in grads.items() if k.startswith(f"transformer.resblocks.{i}."))
        assert block_grad > 0, f"copied block {i} got no gradient"
    for name in ("conv1.weight", "positional_embedding", "ln_pre.weight", "ln_post.weight", "proj"):
        assert grads[name] > 0, f"copied {name} got no gradient"  # the stem and the head
    for key, value in toy_backbone.state_dict().items():
        assert torch.equal(value, clip_before[key]), f"CLIP weight {key} changed"
    changed = [k for k, v in copied.state_dict().items() if not torch.equal(v, copy_before[k])]
    assert any(k.startswith("transformer.resblocks.") for k in changed) and "proj" in changed


def test_gt_pairs_are_the_classes_present(toy_backbone):
    module = _module(toy_backbone, proposal_steps=0)
    module.configure_vocabularies(["background", "a", "b"], [])
    label = torch.tensor([[[0, 0, 1], [IGNORE_INDEX, 1, 1]], [[2, 2, 2], [2, 2, 2]]])
    masks, owner, nouns = module.gt_pairs({"image": torch.rand(2, 3, 2, 3), "label": label})
    assert nouns == ["background", "a", "b"] and owner.tolist() == [0, 0, 1]
    assert torch.equal(masks[1], label[0] == 1)


def test_bad_options_are_rejected(toy_backbone):
    with pytest.raises(ValueError, match="prompt_source"):
        _module(toy_backbone, prompt_source="web")


@pytest.mark.parametrize(
    ("experiment", "source", "data_target"),
    [
        ("ovseg_toy", "gt", "mrovseg.data.toy_datamodule.ToyDataModule"),
        (
            "ovseg_toy_captions",
            "captions",
            "mrovseg.data.toy_mask_caption_datamodule.ToyMaskCaptionDataModule",
        ),
        ("ovseg_vitb16", "gt", "mrovseg.data.datamodule.BenchmarkDataModule"),
    ],
)
def test_experiment_configs_compose(experiment, source, data_target):
    from tests.helpers import compose_with_hydra

    cfg = compose_with_hydra("train", [f"experiment={experiment}"])
    assert cfg.model._target_ == "mrovseg.model.ovseg.OVSeg"
    assert cfg.module._target_ == "mrovseg.training.ovseg.OVSegModule"
    assert cfg.module.prompt_source == source
    assert cfg.model.ensemble_weight == 0.7
    assert cfg.data._target_ == data_target
    assert cfg.module.proposal_steps < cfg.trainer.max_steps


def test_toy_experiment_builds(toy_backbone):
    from mrovseg.training.checkpoint import build_config_of, build_module
    from tests.helpers import compose_with_hydra

    cfg = compose_with_hydra("train", ["experiment=ovseg_toy", "clip.pretrained=null"])
    module = build_module(build_config_of(cfg))
    assert isinstance(module, OVSegModule) and module.model.region.prompts.shape == (3, 64, 64)
