"""OVSeg's training (its own LightningModule): stage 1, then mask prompt tuning, in one run.

Steps ``[0, proposal_steps)`` train stage 1 (the proposal head) on the base classes with the set
criterion, exactly as :class:`~mrovseg.lit_module.MROVSegModule` trains MROVSeg. The remaining steps
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

Optimisation: two AdamW groups, each scheduled within its own phase and at zero lr outside it:
stage 1 as MROVSeg (poly); prompts with ``prompt_lr``, no weight decay, linear warm-up then cosine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.captions import caption_nouns
from mrovseg.lit_module import MROVSegModule
from mrovseg.model.ovseg.mining import match_nouns
from mrovseg.model.ovseg.ovseg import OVSeg
from mrovseg.optim import NO_DECAY_KEYWORDS

PROMPT_SOURCES = ("gt", "captions")


class OVSegModule(MROVSegModule):
    """Trains an :class:`~mrovseg.model.ovseg.OVSeg` model; evaluation is MROVSegModule's.

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
        **kwargs: as :class:`~mrovseg.lit_module.MROVSegModule`.
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
        super().__init__(*args, **kwargs)
        if not isinstance(self.model, OVSeg):
            raise TypeError(
                f"OVSegModule trains an OVSeg model, got {type(self.model).__name__} (use model=ovseg)."
            )
        if prompt_source not in PROMPT_SOURCES:
            raise ValueError(f"prompt_source must be one of {PROMPT_SOURCES}, got {prompt_source!r}.")
        if proposal_steps < 0:
            raise ValueError(f"proposal_steps must be ≥ 0, got {proposal_steps}.")
        self._noun_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ pairs
    def noun_embeddings(self, nouns: Sequence[str]) -> torch.Tensor:
        """``(M, E)`` text embeddings of nouns (one cached embedding per distinct noun)."""
        bb = self.model.backbone
        for n in set(nouns) - set(self._noun_cache):
            self._noun_cache[n] = bb.encode_vocabulary([n], self.templates)[0]
        return torch.stack([self._noun_cache[n].to(self.device) for n in nouns])

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
            for noun in caption_nouns(cap):
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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if self.global_step < self.hparams.proposal_steps:
            return super().training_step(batch, batch_idx)
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
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        # lr, weight decay, betas and the poly power of stage 1 come from the module's optimizer and
        # scheduler configs (``_partial_``), as for MROVSeg
        opt = dict(getattr(self.make_optimizer, "keywords", {}))
        lr, weight_decay = opt.get("lr", 2e-4), opt.get("weight_decay", 1e-4)
        betas = tuple(opt.get("betas", (0.9, 0.999)))
        poly_power = getattr(self.make_scheduler, "keywords", {}).get("power", 0.9)
        decay, no_decay, prompts, clip_ft = [], [], [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad or name.startswith("backbone."):
                continue
            if name == "region.prompts":
                prompts.append(param)
            elif name.startswith("region.visual."):
                clip_ft.append(param)
            elif param.ndim <= 1 or any(k in name for k in NO_DECAY_KEYWORDS):
                no_decay.append(param)
            else:
                decay.append(param)
        groups = [
            {"params": decay, "weight_decay": weight_decay, "lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr},
            {"params": prompts, "weight_decay": 0.0, "lr": hp.prompt_lr},
            {"params": clip_ft, "weight_decay": hp.finetune_weight_decay, "lr": hp.finetune_lr},
        ]
        total = max(1, int(self.trainer.estimated_stepping_batches))
        first = min(hp.proposal_steps, total)
        second = max(1, total - first)
        warm = max(1, min(hp.prompt_warmup, second // 2))

        def stage1(step: int) -> float:
            return max(0.0, 1.0 - step / max(1, first)) ** poly_power if step < first else 0.0

        def stage2(step: int) -> float:
            s = step - first
            if s < 0:
                return 0.0
            if s < warm:
                return (s + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, second - warm))))

        kept = [(g, f) for g, f in zip(groups, [stage1, stage1, stage2, stage2]) if g["params"]]
        optimizer = torch.optim.AdamW([g for g, _ in kept], betas=betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [f for _, f in kept])
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
