"""CLIP passes and FLOPs per image: OVSeg's one CLIP pass per region against MROVSeg's single pass.

Both models label an image with the same sliding windows (:func:`~mrovseg.model.inference.sliding_window`).
Per window, MROVSeg runs the CLIP trunk once (global view and slices batched together); OVSeg runs
it once over the window for its proposals and then once per non-empty proposal (a 224² crop for
ViT-B/16), so its cost grows with the number of regions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mrovseg.model.inference import sliding_window


@torch.no_grad()
def clip_passes_per_image(
    model: torch.nn.Module,
    image: torch.Tensor,
    text: torch.Tensor,
    window: int,
    overlap: float = 1 / 3,
) -> dict[str, float]:
    """CLIP passes to label one image ``(3, H, W)`` with sliding windows (one window per call).

    Returns:
        ``{"windows", "trunk_passes", "region_passes", "clip_passes"}``: trunk passes count calls of the
        CLIP trunk over whole windows (MROVSeg: one per window, its views batched); region passes count
        masked-region crops through CLIP (OVSeg only); ``clip_passes`` is their sum.
    """
    backbone = model.backbone
    trunk0 = backbone.num_trunk_calls
    region0 = getattr(model, "num_region_passes", 0)
    windows = 0

    def score(w: torch.Tensor) -> torch.Tensor:
        nonlocal windows
        windows += w.shape[0]
        return model.semantic_scores(w, text)

    sliding_window(score, image, window, overlap, window_batch=1)
    trunk = backbone.num_trunk_calls - trunk0
    region = getattr(model, "num_region_passes", 0) - region0
    return {"windows": windows, "trunk_passes": trunk, "region_passes": region, "clip_passes": trunk + region}


@torch.no_grad()
def gflops_per_image(
    model: torch.nn.Module, image: torch.Tensor, text: torch.Tensor, window: int, overlap: float = 1 / 3
) -> float:
    """GFLOPs (2 per multiply-add, ``torch.utils.flop_counter``) to label one image with sliding windows."""
    counter = FlopCounterMode(display=False)
    with counter:
        sliding_window(lambda w: model.semantic_scores(w, text), image, window, overlap, window_batch=1)
    return counter.get_total_flops() / 1e9


def describe(passes: dict[str, Any]) -> str:
    """One line: ``windows 6, CLIP passes 58.0 (trunk 6, regions 52)``."""
    return (
        f"windows {passes['windows']}, CLIP passes {passes['clip_passes']} "
        f"(trunk {passes['trunk_passes']}, regions {passes['region_passes']})"
    )
