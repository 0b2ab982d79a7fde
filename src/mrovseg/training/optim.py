"""Optimisation pieces the configs name: weight-decay parameter groups and the poly LR schedule.

The optimizer and the schedule themselves are ``_partial_`` configs (``conf/module/mrovseg.yaml``):
``torch.optim.AdamW`` and :class:`ClosedFormPolynomialLR`, so a user swaps either without code.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import nn

from mrovseg.model.clip_backbone import BACKBONE_PREFIX

#: Parameters whose name contains one of these get no weight decay (as do all 1-d parameters).
NO_DECAY_KEYWORDS = ("queries", "query_pos", "void_embed", "pos_embed", "norm")


def decay_groups(model: nn.Module, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The trainable parameters outside the frozen CLIP (:data:`BACKBONE_PREFIX`) in two groups: with the
    optimizer's weight decay, and without it (norms, biases, embeddings, queries: ``weight_decay=0``).
    Parameters whose name starts with one of ``skip`` are left out (a method groups them itself)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad or name.startswith((BACKBONE_PREFIX, *skip)):
            continue
        if param.ndim <= 1 or any(k in name for k in NO_DECAY_KEYWORDS):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class ClosedFormPolynomialLR(torch.optim.lr_scheduler.PolynomialLR):
    """``torch.optim.lr_scheduler.PolynomialLR`` evaluated in its closed form at every step:
    ``lr = base_lr · (1 - min(step, total_iters) / total_iters) ** power``.

    The library's ``get_lr`` applies the decay as a running product of per-step ratios, which drifts
    from the closed form in the last bits (1,279 of 1,500 steps differ for total 1,500, power 0.9;
    torch 2.14). This class returns the library's own closed form
    (``PolynomialLR._get_closed_form_lr``), so the LR sequence equals
    ``base_lr · max(0, 1 - min(step, total) / total) ** power`` exactly (``tests/test_optim.py``).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_iters: int = 5,
        power: float = 1.0,
        warmup_iters: int = 0,
        last_epoch: int = -1,
    ) -> None:
        self.warmup_iters = max(0, int(warmup_iters))
        super().__init__(optimizer, total_iters=total_iters, power=power, last_epoch=last_epoch)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """The closed form, times ``(step + 1) / warmup_iters`` during the first ``warmup_iters`` steps
        (a linear warm-up; ``warmup_iters=0``, the default, is the plain poly decay)."""
        lrs = self._get_closed_form_lr()
        if self.last_epoch < self.warmup_iters:
            factor = (self.last_epoch + 1) / self.warmup_iters
            lrs = [lr * factor for lr in lrs]
        return lrs


#: The paper's optimisation (DESIGN.md) for modules built in Python; the configs state the same in
#: ``conf/module/mrovseg.yaml``: AdamW, lr 2e-4, weight decay 1e-4, poly decay with power 0.9.
DEFAULT_OPTIMIZER = partial(torch.optim.AdamW, lr=2e-4, weight_decay=1e-4)
DEFAULT_SCHEDULER = partial(ClosedFormPolynomialLR, power=0.9)


def two_stage_lr(
    optimizer: torch.optim.Optimizer,
    total_iters: int,
    first_stage: int,
    warmup: int,
    power: float = 0.9,
    warmup_iters: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """OVSeg's schedule (``conf/module/ovseg.yaml``): each parameter group (``group["stage"]``: 1 or 2)
    trains in its own stage and has zero lr outside it.

    Stage 1 (steps ``[0, first_stage)``): poly decay ``(1 - step / first_stage) ** power``, as MROVSeg,
    with MROVSeg's optional linear warm-up over its first ``warmup_iters`` steps.
    Stage 2 (the rest): linear warm-up over ``min(warmup, stage length // 2)`` steps, then cosine to 0
    (ov-seg's mask prompt tuning).
    """
    first = min(first_stage, total_iters)
    second = max(1, total_iters - first)
    warm = max(1, min(warmup, second // 2))

    def stage1(step: int) -> float:
        if step >= first:
            return 0.0
        factor = max(0.0, 1.0 - step / max(1, first)) ** power
        return factor * (step + 1) / warmup_iters if step < warmup_iters else factor

    def stage2(step: int) -> float:
        s = step - first
        if s < 0:
            return 0.0
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, second - warm))))

    stages = [int(group.get("stage", 1)) for group in optimizer.param_groups]
    if set(stages) - {1, 2}:
        raise ValueError(f"two_stage_lr: every parameter group needs stage 1 or 2, got {stages}.")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, [stage1 if s == 1 else stage2 for s in stages])
