"""Speed switches that leave results unchanged: ``torch.compile`` of the trainable parts, fused AdamW.

* ``trainer.compile=true`` (read by ``mrovseg.train``, not passed to Lightning's ``Trainer``):
  ``compile_trainable`` compiles the adapter, the mask decoder and the classifier in place with
  ``nn.Module.compile``, so parameter names and checkpoints do not change. The frozen CLIP trunk
  is not compiled (it runs under ``torch.no_grad``; compile it separately if profiling says so).
* Fused AdamW (``torch.optim.AdamW(fused=True)``: one kernel for all parameters) is used when every
  parameter is on a CUDA device; elsewhere the default (``foreach``) implementation runs. Both
  compute the same update up to float rounding (``tests/test_speed_switches.py``).

The adapter's activation checkpointing lives in ``mrovseg.model.mrovseg.adapter`` (``model.adapter.checkpoint``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

#: Submodules of ``MROVSeg`` that ``compile_trainable`` compiles (everything trained).
TRAINABLE_PARTS = ("adapter", "decoder", "classifier")


def compile_trainable(model: nn.Module, parts: Sequence[str] = TRAINABLE_PARTS, **options: Any) -> list[str]:
    """Compiles ``model``'s trainable submodules in place; returns the names compiled.

    Args:
        model: an ``MROVSeg`` (or any module with the named children).
        parts: child names to compile; missing children are skipped (e.g. ``DenseCLIP`` has none).
        **options: ``torch.compile`` options (``mode``, ``dynamic``, ``backend``...).

    Returns:
        The names of the compiled children.
    """
    compiled = []
    for name in parts:
        child = getattr(model, name, None)
        if isinstance(child, nn.Module):
            child.compile(**options)
            compiled.append(name)
    return compiled


def adamw_options(params: Iterable[torch.Tensor]) -> dict[str, Any]:
    """Extra ``torch.optim.AdamW`` keyword arguments: ``fused=True`` when all parameters are on CUDA."""
    params = list(params)
    on_cuda = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    return {"fused": True} if on_cuda else {}


def optimizer_options(factory: Callable[..., Any], groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``adamw_options`` for a ``module.optimizer`` partial of AdamW or Adam that does not set
    ``fused`` / ``foreach`` itself; nothing for any other optimizer."""
    func = getattr(factory, "func", factory)
    keywords = getattr(factory, "keywords", {}) or {}
    if func not in (torch.optim.AdamW, torch.optim.Adam) or {"fused", "foreach"} & set(keywords):
        return {}
    return adamw_options(p for group in groups for p in group["params"])
