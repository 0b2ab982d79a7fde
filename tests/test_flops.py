"""FLOP counts that do not depend on the torch version: attention is counted by our formula.

torch 2.14.1's ``FlopCounterMode`` does not count the CPU SDPA kernel at all; ours must count a
fused attention exactly as its unfused (``bmm``) form, and the toy CLIP trunk as the analytic formula.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mrovseg.benchmarking.flops import attention_flops, count_flops, sdpa_mapping, vit_trunk_flops
from mrovseg.model.clip_backbone import CLIPBackbone


def test_fused_attention_is_counted_by_the_formula() -> None:
    q, k, v = torch.rand(2, 3, 10, 8), torch.rand(2, 3, 7, 8), torch.rand(2, 3, 7, 5)
    expected = 2 * 2 * 3 * 10 * 7 * (8 + 5)
    assert attention_flops(q.shape, k.shape, v.shape) == expected
    assert count_flops(lambda: F.scaled_dot_product_attention(q, k, v)) == expected
    mask = torch.zeros(2, 3, 10, 7)
    assert count_flops(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)) == expected
    # the unfused form: two bmm-s, which every torch release counts
    assert count_flops(lambda: (q @ k.transpose(-2, -1)).softmax(-1) @ v) == expected
    assert torch.ops.aten._scaled_dot_product_flash_attention_for_cpu in sdpa_mapping()


def test_attention_backward_is_twice_the_forward() -> None:
    q = torch.rand(1, 2, 6, 4, requires_grad=True)
    total = count_flops(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward(), grad=True)
    assert total == 3 * attention_flops(q.shape, q.shape, q.shape)


def test_toy_trunk_matches_the_analytic_formula(toy_backbone: CLIPBackbone) -> None:
    views = torch.rand(5, 3, 32, 32)  # p = 0.5 at 64²: 1 global view + 4 slices of 32², one pass
    counted = count_flops(lambda: toy_backbone.forward_views(views, [0, 1, 2, 3], 1))
    # toy CLIP: patch 4 → 8×8 grid, width 64, 3 layers, MLP ratio 4
    assert counted == vit_trunk_flops(5, (8, 8), width=64, depth=3, patch=4, mlp_ratio=4.0) == 114_036_480
    toy_backbone.fused_attn = False
    try:  # the math path (bmm) gives the same count
        assert count_flops(lambda: toy_backbone.forward_views(views, [0, 1, 2, 3], 1)) == counted
    finally:
        toy_backbone.fused_attn = True
