"""Optimisation pieces the configs name: weight-decay parameter groups and the poly LR schedule.

The optimizer and the schedule themselves are ``_partial_`` configs (``conf/module/mrovseg.yaml``):
``torch.optim.AdamW`` and :class:`ClosedFormPolynomialLR`, so a user swaps either without code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Parameters whose name contains one of these get no weight decay (as do all 1-d parameters).
NO_DECAY_KEYWORDS = ("queries", "query_pos", "void_embed", "pos_embed", "norm")


def decay_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The trainable parameters outside the frozen CLIP (``backbone.``) in two groups: with the
    optimizer's weight decay, and without it (norms, biases, embeddings, queries: ``weight_decay=0``)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad or name.startswith("backbone."):
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

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return self._get_closed_form_lr()
