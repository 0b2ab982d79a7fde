"""``compile=true`` for inference (predict, eval, the demo, :class:`~mrovseg.serving.segmenter.Segmenter`):
``torch.compile`` of the model's forward with Inductor's *freezing*.

Freezing treats the weights as constants of the inference graph: Inductor folds them, prepacks the
linear layers' weights for oneDNN and fuses the elementwise work around them (LayerNorm, QuickGELU,
residual adds, casts) — what eager bf16 leaves unfused. It applies to graphs built without autograd
(``torch.no_grad``/``inference_mode``, as every inference path here runs), so the weights must not change
afterwards; it is a process-wide Inductor setting (``torch._inductor.config.freezing``), turned on here.
The shapes are static (``dynamic=False``): each new window batch size compiles once more (the last,
partial batch of a sliding window is one such shape). Measured on the dev box (BENCHMARKS.md, "CPU
inference precision"): ViT-B/16 640² bf16 forward 1.93 → 1.29 CPU-s in one run, ~40 CPU-s (90 s wall)
to compile; worth it for a benchmark or a folder of images, not for one photo.
"""

from __future__ import annotations

import logging

from torch import nn

log = logging.getLogger(__name__)


def compile_for_inference(model: nn.Module) -> nn.Module:
    """Compiles ``model``'s forward in place (``nn.Module.compile``: parameter names and ``state_dict`` are
    unchanged) with Inductor's freezing on; returns the model."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    model.compile(dynamic=False)
    log.info("torch.compile of %s's forward (Inductor, freezing, static shapes)", type(model).__name__)
    return model
