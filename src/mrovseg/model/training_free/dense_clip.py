"""Training-free baseline: dense per-patch labelling with CLIP's value path (MaskCLIP-style).

MaskCLIP (Zhou, Loy, Dai, ECCV 2022) labels every patch with frozen CLIP by replacing the last
block's attention with its value path: ``x_patch = out_proj(v(ln_1(x)))``, then CLIP's
``ln_post`` and ``proj``; cosine similarity with the text embeddings, times CLIP's logit scale,
softmax over the vocabulary. No parameter is trained, so the same evaluation (vocabulary, sliding
windows, metrics) gives the reference every trained model must beat.

``residual=True`` keeps the block's residual and MLP around the value path (a common variant).
``view_size`` resizes each window before CLIP (None: the window at its own resolution, with the
positional embedding interpolated).

It is the member of the training-free family of :mod:`.last_block` with the value path (SCLIP, ClearCLIP
and NACLIP are the others, :mod:`.methods`). It takes only its own options: an experiment that sets another
model's (MROVSeg's ``slice_ratio``, ``adapter``, …) does not compose with it; ``experiment=dense_clip_toy``
is the toy world's.
"""

from __future__ import annotations

from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.training_free.last_block import LastBlockCLIP


class DenseCLIP(LastBlockCLIP):
    """Per-patch CLIP classifier (no trainable parameters): :class:`LastBlockCLIP` with the value path.

    In the family's terms: ``attention="value"`` (``A = I``), ``residual`` and ``ffn`` both equal to
    ``residual``, CLIP's learned logit scale, each window's ``softmax(τ · cos)`` averaged
    (``merge="probabilities"``), no post-processing, no threshold — the results are bit for bit those
    of the earlier stand-alone class (``tests/model/test_training_free.py``).

    Args:
        backbone: the frozen CLIP.
        view_size: side each window is resized to before CLIP; None keeps the window's size.
        residual: keep the last block's residual and MLP around the value path.
    """

    def __init__(self, backbone: CLIPBackbone, view_size: int | None = None, residual: bool = False) -> None:
        super().__init__(
            backbone,
            attention="value",
            kernel_sigma=None,
            residual=residual,
            ffn=residual,
            logit_scale=None,
            merge="probabilities",
            post=None,
            prob_threshold=0.0,
            view_size=view_size,
        )
