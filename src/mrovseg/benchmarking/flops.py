r"""FLOP counts that do not depend on the torch version: attention is counted by our own formula.

``torch.utils.flop_counter.FlopCounterMode`` counts matmuls and convolutions (2 FLOPs per
multiply-add, so MACs = FLOPs / 2) and, for ``scaled_dot_product_attention``, only the kernels its
release registers: torch 2.14.1 registers the CUDA flash / memory-efficient / cuDNN kernels but not
the CPU one (``_scaled_dot_product_flash_attention_for_cpu``), so a CPU count silently misses every
fused attention (84.7 of ViT-B/16's 646.2 GFLOPs at p = 0.5). ``count_flops`` passes a
``custom_mapping`` for every SDPA kernel (CPU and CUDA, forward and backward) with the formula below,
so each release counts the same. Attention that falls back to the unfused math path is made of
``bmm``\ s, which every release counts.

Formula (per call, q ``(B, H, Sq, D)``, k ``(B, H, Sk, D)``, v ``(B, H, Sk, Dv)``), as torch's own:

    forward  = 2·B·H·Sq·Sk·D   (Q Kᵀ)  +  2·B·H·Sq·Sk·Dv   (P V)
    backward = 2 × forward     (dV = Pᵀ dO, dP = dO Vᵀ, dQ = dS K, dK = dSᵀ Q)

Softmax, masks, biases and scaling are elementwise and not counted (as for every other op).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

#: SDPA kernels by name (looked up at run time: a release may lack some); forward ops take
#: ``(query, key, value, ...)``, backward ops ``(grad_out, query, key, value, ...)``.
SDPA_FORWARD = (
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
)
SDPA_BACKWARD = tuple(f"{name}_backward" for name in SDPA_FORWARD)


def attention_flops(q_shape: Sequence[int], k_shape: Sequence[int], v_shape: Sequence[int]) -> int:
    """Forward FLOPs of one attention: ``2·B·H·Sq·Sk·(D + Dv)`` (module docstring)."""
    *batch, sq, d = q_shape
    sk, dv = k_shape[-2], v_shape[-1]
    return 2 * math.prod(batch) * sq * sk * (d + dv)


def _forward(q: Sequence[int], k: Sequence[int], v: Sequence[int], *args: Any, **kwargs: Any) -> int:
    return attention_flops(q, k, v)


def _backward(
    grad: Sequence[int], q: Sequence[int], k: Sequence[int], v: Sequence[int], *args: Any, **kwargs: Any
) -> int:
    return 2 * attention_flops(q, k, v)


def sdpa_mapping() -> dict[Any, Callable[..., int]]:
    """``custom_mapping`` for ``FlopCounterMode``: every SDPA kernel this torch has → our formula."""
    mapping: dict[Any, Callable[..., int]] = {}
    for names, fn in ((SDPA_FORWARD, _forward), (SDPA_BACKWARD, _backward)):
        for name in names:
            op = getattr(aten, name, None)
            if op is not None:
                mapping[op] = fn
    return mapping


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that counts attention with ``sdpa_mapping``."""
    return FlopCounterMode(display=False, custom_mapping=sdpa_mapping())


def count_flops(fn: Callable[[], Any], grad: bool = False) -> int:
    """FLOPs of one call of ``fn`` (2 per multiply-add; attention counted explicitly).

    Args:
        fn: the call; with ``grad=False`` it runs under ``torch.no_grad``.
        grad: run with autograd on (``fn`` may then call ``backward`` and its FLOPs are counted too).
    """
    counter = flop_counter()
    with torch.set_grad_enabled(grad), counter:
        fn()
    return counter.get_total_flops()


def vit_trunk_flops(
    views: int, grid: tuple[int, int], width: int, depth: int, patch: int, mlp_ratio: float
) -> int:
    """Analytic FLOPs of a CLIP ViT trunk over ``views`` images (patch embedding + ``depth`` blocks).

    Per block over ``T = 1 + gh·gw`` tokens: q/k/v and output projections ``2·T·W·4W``, attention
    ``2·T·T·2W`` (Q Kᵀ and P V over all heads), MLP ``2·2·T·W·(ratio·W)``; the patch embedding is a
    ``patch × patch`` convolution ``2·gh·gw·3·patch²·W``.
    """
    tokens = 1 + grid[0] * grid[1]
    hidden = int(mlp_ratio * width)
    block = 2 * tokens * width * 4 * width + 2 * tokens * tokens * 2 * width + 4 * tokens * width * hidden
    embed = 2 * grid[0] * grid[1] * 3 * patch * patch * width
    return views * (embed + depth * block)
