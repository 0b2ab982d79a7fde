"""OVSeg's training (its own LightningModule): stage 1, then mask prompt tuning, in one run.

Steps ``[0, proposal_steps)`` train stage 1 (the proposal head) on the base classes with the set
criterion, with MROVSeg's step (:func:`~mrovseg.training.mrovseg.set_prediction_step`). The remaining steps
train the mask prompts (and, with ``region.finetune``, a copy of CLIP's image tower) from
(masked region, class name) pairs, with stage 1 frozen; the pairs come from ``prompt_source``:

* ``"gt"``: every class present in a training label map (base classes only; novel pixels are
  ignored) gives its ground-truth mask and name (OVSeg's COCO-Stuff "Case (1)");
* ``"captions"``: OVSeg's recipe: the nouns of the image's caption (``batch["caption"]``) are each
  paired with the stage-1 proposal that the plain (prompt-free) CLIP prefers
  (:func:`~mrovseg.model.ovseg.mining.match_nouns`).

Loss: OVSeg's contrastive loss with the text tower locked (ov-seg ``open_clip_training``):
``½[CE(s·R Tᵀ) + CE(s·T Rᵀ)]`` over the step's pairs, with CLIP's logit scale ``s``; a noun repeated
in a batch is a negative, as there. ``dedupe_nouns=True`` instead scores each region against the
step's *distinct* nouns (region→text only): our choice for small vocabularies, where repeats are common.

Optimisation: ``module.optimizer`` (AdamW, as every method) over the stage-1 groups (with and without
weight decay, :func:`~mrovseg.training.optim.decay_groups`), the prompts (``prompt_lr``, no weight decay)
and, with ``region.finetune``, the CLIP copy (``finetune_lr``, ``finetune_weight_decay``);
``module.scheduler`` (:func:`~mrovseg.training.optim.two_stage_lr`) schedules each group within its own
stage and at zero lr outside it: stage 1 poly, stage 2 linear warm-up then cosine.

DDP (``trainer=ddp``, ``find_unused_parameters=False``): every parameter the optimizer holds enters each
step's loss with weight 0, and the idle stage's (zero) gradients are dropped after the all-reduce, so
each stage trains under DDP as it does in one process (:meth:`OVSegModule.on_after_backward`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.captions import extract_nouns
from mrovseg.model.ovseg.mining import match_nouns
from mrovseg.model.ovseg.ovseg import OVSeg
from mrovseg.training.base import SegmentationModule
from mrovseg.training.mrovseg import set_prediction_step
from mrovseg.training.optim import DEFAULT_SCHEDULER, decay_groups, two_stage_lr

PROMPT_SOURCES = ("gt", "captions")


class OVSegModule(SegmentationModule):
    """Trains an :class:`~mrovseg.model.ovseg.OVSeg` model; evaluation is the shared base's.

    Args:
        model: the OVSeg model.
        criterion: the set-prediction loss (stage 1).
        proposal_steps: optimizer steps of stage 1; the rest of ``trainer.max_steps`` tunes prompts.
        prompt_source: ``"gt"`` or ``"captions"`` (see the module docstring).
        prompt_lr: prompt learning rate (ov-seg: 0.05).
        prompt_warmup: warm-up steps of the prompt phase (ov-seg: 100).
        finetune_lr: learning rate of CLIP's image-tower copy when ``region.finetune`` (ov-seg: 5e-6).
        finetune_weight_decay: its weight decay (ov-seg: 0.2).
        max_pairs: at most this many pairs per step (random subset); None = all.
        dedupe_nouns: score regions against the step's distinct nouns (see above).
        min_similarity: caption mining: drop pairs with a lower cosine similarity (None keeps all).
        stage1_checkpoint: if set, a checkpoint is written there when stage 1 ends, so that other
            prompt sources can branch from the same proposals (``ckpt_path=<it>``).
        **kwargs: as :class:`~mrovseg.training.base.SegmentationModule`.
    """

    def __init__(
        self,
        *args: Any,
        proposal_steps: int = 1000,
        prompt_source: str = "gt",
        prompt_lr: float = 0.05,
        prompt_warmup: int = 100,
        finetune_lr: float = 5e-6,
        finetune_weight_decay: float = 0.2,
        max_pairs: int | None = None,
        dedupe_nouns: bool = False,
        min_similarity: float | None = None,
        stage1_checkpoint: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Python default: the two-stage schedule with the poly power of the other methods (configs:
        # conf/module/ovseg.yaml)
        kwargs.setdefault("scheduler", partial(two_stage_lr, power=DEFAULT_SCHEDULER.keywords["power"]))
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, OVSeg):
            raise TypeError(
                f"OVSegModule trains an OVSeg model, got {type(self.model).__name__} (use model=ovseg)."
            )
        if prompt_source not in PROMPT_SOURCES:
            raise ValueError(f"prompt_source must be one of {PROMPT_SOURCES}, got {prompt_source!r}.")
        if proposal_steps < 0:
            raise ValueError(f"proposal_steps must be ≥ 0, got {proposal_steps}.")

    # ------------------------------------------------------------------ pairs
    def noun_embeddings(self, nouns: Sequence[str]) -> torch.Tensor:
        """``(M, E)`` text embeddings of nouns (the backbone's cache, one noun per entry)."""
        emb = {n: self.model.backbone.encode_vocabulary([n], self.templates)[0] for n in dict.fromkeys(nouns)}
        return torch.stack([emb[n] for n in nouns]).to(self.device)

    def gt_pairs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Ground-truth masks of the classes present in each label map and their names."""
        names = self.train_class_names or []
        masks, owner, nouns = [], [], []
        for i, label in enumerate(batch["label"]):
            for c in label.unique().tolist():
                if c == IGNORE_INDEX:
                    continue
                masks.append(label == c)
                owner.append(i)
                nouns.append(names[c])
        dev = batch["image"].device
        if not masks:
            return (
                torch.zeros(0, *batch["label"].shape[1:], dtype=torch.bool, device=dev),
                torch.zeros(0, dtype=torch.long, device=dev),
                [],
            )
        return torch.stack(masks), torch.tensor(owner, device=dev), nouns

    @torch.no_grad()
    def caption_pairs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Pairs mined from captions: each noun with the proposal the plain CLIP prefers."""
        if "caption" not in batch:
            raise KeyError("prompt_source='captions' needs batch['caption'] (use data=toy_captions).")
        model: OVSeg = self.model
        images = batch["image"]
        text = self.text_embeddings(self.train_class_names or [])
        pred = model.proposals(images, text)[-1]
        binary = model.binary_masks(pred["pred_masks"], tuple(images.shape[-2:]))
        n = binary.shape[1]
        binary = binary.flatten(0, 1)
        idx = binary.flatten(1).any(dim=1).nonzero()[:, 0]
        region_emb = model.region_embeddings(images, binary[idx], idx // n, use_prompts=False)
        nouns, noun_image = [], []
        for i, cap in enumerate(batch["caption"]):
            for noun in extract_nouns(cap):
                nouns.append(noun)
                noun_image.append(i)
        if not nouns:
            return binary[:0], idx[:0], []
        noun_emb = self.noun_embeddings(nouns)
        noun_idx, region_idx = match_nouns(
            region_emb,
            idx // n,
            noun_emb,
            torch.tensor(noun_image, device=images.device),
            self.hparams.min_similarity,
        )
        picked = idx[region_idx]
        return binary[picked], picked // n, [nouns[j] for j in noun_idx.tolist()]

    # ------------------------------------------------------------------ training
    def prompt_loss(self, region_emb: torch.Tensor, nouns: Sequence[str]) -> torch.Tensor:
        """Contrastive loss of region embeddings against their nouns' (locked) text embeddings."""
        scale = self.model.backbone.logit_scale
        if self.hparams.dedupe_nouns:
            vocab = sorted(set(nouns))
            target = torch.tensor([vocab.index(n) for n in nouns], device=region_emb.device)
            return F.cross_entropy(scale * region_emb @ self.noun_embeddings(vocab).T, target)
        logits = scale * region_emb @ self.noun_embeddings(nouns).T
        target = torch.arange(len(nouns), device=region_emb.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    def forward(self, images: torch.Tensor, class_names: Sequence[str]) -> dict[str, Any]:
        return self.model(images, self.text_embeddings(class_names))

    @property
    def current_stage(self) -> int:
        """The stage this step trains: 1 (proposal head) before ``proposal_steps``, then 2 (prompts)."""
        return 1 if self.global_step < self.hparams.proposal_steps else 2

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        loss = set_prediction_step(self, batch) if self.current_stage == 1 else self.prompt_step(batch)
        if loss is None and self.trainer.world_size == 1:
            return None  # no pair in this batch: the step is skipped (under DDP every rank must step)
        zero = self.every_parameter_term()
        return zero if loss is None else loss + zero

    # ------------------------------------------------------------------ both stages under DDP
    def every_parameter_term(self) -> torch.Tensor:
        """``0 · Σ_p Σ_i p_i`` over every parameter the optimizer holds: added to each step's loss (value
        and other gradients unchanged, bit for bit), so that every parameter gets a gradient, exactly 0
        where the step does not reach it (see :meth:`on_after_backward`)."""
        params = [p for g in self.optimizers().param_groups for p in g["params"]]
        return 0.0 * torch.stack([p.sum() for p in params]).sum()

    def on_after_backward(self) -> None:
        """Drops the gradients of the stage not being trained (after DDP's all-reduce).

        Each stage trains its own parameter groups, and DDP (``trainer=ddp``, ``find_unused_parameters=
        False``) stops when a parameter it wraps gets no gradient: stage 1 never reaches the prompts,
        stage 2 never the proposal head. Freezing per stage (``requires_grad``) cannot help: DDP fixes
        the parameters it reduces when it wraps the model, once. So every step's loss carries
        :meth:`every_parameter_term` and, here, the idle stage's gradients (zeros) are set to None, so
        AdamW skips those parameters as it does without DDP. A zero gradient would not be harmless: it
        advances AdamW's step count, and with it the bias correction ``1 − β^t`` of the stage's first
        real updates (Loshchilov & Hutter, ICLR 2019, Alg. 2). ``find_unused_parameters=True`` would
        also do, but it is a trainer-wide setting and traverses the graph on every step.
        """
        for group in self.optimizers().param_groups:
            if group["stage"] != self.current_stage:
                for p in group["params"]:
                    p.grad = None

    def prompt_step(self, batch: dict[str, Any]) -> torch.Tensor | None:
        """Stage 2: the contrastive loss of the step's (region, name) pairs; None if it has none."""
        if self.hparams.prompt_source == "gt":
            masks, owner, nouns = self.gt_pairs(batch)
        else:
            masks, owner, nouns = self.caption_pairs(batch)
        if not nouns:
            return None
        cap = self.hparams.max_pairs
        if cap is not None and len(nouns) > cap:
            keep = torch.randperm(len(nouns), device=masks.device)[:cap]
            masks, owner, nouns = masks[keep], owner[keep], [nouns[j] for j in keep.tolist()]
        emb = self.model.region_embeddings(batch["image"], masks, owner, use_prompts=True)
        loss = self.prompt_loss(emb, nouns)
        bs = batch["image"].shape[0]
        self.log("train/prompt_loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/num_pairs", float(len(nouns)), batch_size=bs)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        path = self.hparams.stage1_checkpoint
        if path and self.global_step == self.hparams.proposal_steps and self.hparams.proposal_steps > 0:
            self.trainer.save_checkpoint(path)

    # ------------------------------------------------------------------ optimisation
    def param_groups(self) -> list[dict[str, Any]]:
        """Stage 1's two groups (lr and weight decay of ``module.optimizer``), then the prompts and the
        CLIP copy of ``region.finetune`` with their own lr and weight decay (empty groups dropped)."""
        hp = self.hparams
        named = dict(self.model.named_parameters())
        prompts = [p for n, p in named.items() if n == "region.prompts" and p.requires_grad]
        clip_ft = [p for n, p in named.items() if n.startswith("region.visual.") and p.requires_grad]
        stage1 = decay_groups(self.model, skip=("region.prompts", "region.visual."))
        groups = [
            {**stage1[0], "stage": 1},
            {**stage1[1], "stage": 1},
            {"params": prompts, "weight_decay": 0.0, "lr": hp.prompt_lr, "stage": 2},
            {"params": clip_ft, "weight_decay": hp.finetune_weight_decay, "lr": hp.finetune_lr, "stage": 2},
        ]
        return [g for g in groups if g["params"]]

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer, total_iters: int) -> Any:
        hp = self.hparams
        return self.make_scheduler(
            optimizer, total_iters=total_iters, first_stage=hp.proposal_steps, warmup=hp.prompt_warmup
        )
