"""The published training-free methods as settings of :class:`~.last_block.LastBlockCLIP`.

Facts (equations, σ, τ, windows, templates) are those of ``../shared/papers/training-free-facts.md``,
read from each method's public code at the commit it names (SCLIP ``b56bd30``, ClearCLIP ``ad68a40``,
NACLIP ``0cac3a6``); "§" below points into that sheet. The papers' own text was not read: where the
sheet marks a fact unverified, so does this module. Every switch may still be overridden from the config
(``model.residual=true``); ``conf/model/<name>.yaml`` lists each method's values. Notation: the module
docstring of :mod:`.last_block` (``X`` enters the last block, ``Z = LN1(X)``, ``s = d^-1/2``,
``O = concat_h(A_h V_h) W_o + b_o``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from mrovseg.model.training_free.last_block import LastBlockCLIP


class SCLIP(LastBlockCLIP):
    """SCLIP's correlative self-attention (CSA).

    Wang, Mei & Yuille, "SCLIP: Rethinking Self-Attention for Dense Vision-Language Inference", ECCV 2024
    (arXiv 2312.01597).

    ``A = softmax(s QQᵀ) + softmax(s KKᵀ)``, ``Y = X + O``, ``Y ← Y + FFN(LN2(Y))`` (§1).

    Choices written down:

    * **residual and FFN kept**: SCLIP's code (``clip/model.py``, ``custom_attn(csa=True)``) keeps both;
      whether the paper's text agrees is unverified (§1). ``model.residual=false model.ffn=false`` drops them.
    * two projections, ``W_q`` and ``W_k``, as in the code; the paper's figure draws a single ``W_r``
      with ``softmax(r rᵀ)`` (§1).
    * the two softmaxes are summed, not averaged (rows of ``A`` sum to 2), each with ``s`` inside (§5).
    * τ = 40, the code's default (``clip_segmentor.py``); its configs raise it to 65 for VOC-21 and 50 for
      PC-60 / COCO-Object, none of which this package evaluates (§2). Without a probability threshold τ
      does not change a label.
    * no post-processing by default (``pamr_steps=0`` in its configs, §3); ``model.post=pamr`` runs PAMR.
    * protocol (``conf/experiment/sclip_vitb16.yaml``): short side 336 (COCO-Stuff 448, Cityscapes 560),
      224² windows with stride 112, the 80 ImageNet templates (§2, §3).
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        **LastBlockCLIP.DEFAULTS,
        "attention": "qq+kk",
        "residual": True,
        "ffn": True,
        "logit_scale": 40.0,
    }


class ClearCLIP(LastBlockCLIP):
    """ClearCLIP: query–query attention, no residual, no FFN.

    Lan, Chen, Ke, Wang, Feng & Zhang, "ClearCLIP: Decomposing CLIP Representations for Dense
    Vision-Language Inference", ECCV 2024 (arXiv 2407.12442).

    ``A = softmax(s QQᵀ)``, ``Y = O`` (§1).

    Choices written down:

    * **q–q attention**: the repository's shipped ``configs/base_config.py`` sets ``model_type='vanilla'``
      (q–k attention, still without residual and FFN); ClearCLIP's own attention needs
      ``model_type='ClearCLIP'`` as in its ``demo.py``, and the maintainer confirms it (issue #12; §1).
      The shipped default is ``model.attention=qk`` here.
    * τ = 50 everywhere (``clearclip_segmentor.py``, §2).
    * no post-processing (the repository has no PAMR, §3).
    * protocol (``conf/experiment/clearclip_vitb16.yaml``): short side 448, 448² windows with stride 224
      (Cityscapes 224² with stride 224), the 80 ImageNet templates (§2, §3). The repository pads each window
      to a multiple of 16 and still runs the full last block, whose output it does not use (§5); windows
      here are multiples of the patch already and the unused block is not run.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        **LastBlockCLIP.DEFAULTS,
        "attention": "qq",
        "residual": False,
        "ffn": False,
        "logit_scale": 50.0,
    }


class NACLIP(LastBlockCLIP):
    """NACLIP: neighbourhood-aware key–key attention, no residual, no FFN.

    Hajimiri, Ben Ayed & Dolz, "Pay Attention to Your Neighbours: Training-Free Open-Vocabulary Semantic
    Segmentation", WACV 2025 (arXiv 2404.08181).

    ``A = softmax(s KKᵀ + Ω)``, ``Ω_ij = exp(−‖p_i − p_j‖² / (2σ²))``, ``Y = O`` (§1).

    Choices written down:

    * σ = 5 patches (``gaussian_std=5.`` in ``naclip.py``; the README runs ``test_all.sh reduced naclip 5
      on``). ``Ω`` is not normalised (1 on the diagonal), spans the whole grid (its window is
      ``(2h−1)×(2w−1)``), is 0 on the [CLS] row and column, and is added after the ``s``-scaling (§1, §5).
    * τ = 40 everywhere (``naclip.py``, §2).
    * **no post-processing by default**, as the paper's "no post-processing" numbers (VOC-20 79.7,
      PC-59 35.2, COCO-Stuff 23.3, Cityscapes 35.5, ADE 17.4; § numbers, third-party READMEs). The
      repository runs PAMR by default (10 steps, dilations 8 and 16), and its README figures include it
      (§3, §4): ``model.post=pamr``.
    * protocol (``conf/experiment/naclip_vitb16.yaml``): short side 336 (Cityscapes 560), 224² windows with
      stride 112, the 80 ImageNet templates. Since commit ``defb7c9`` the repository runs VOC-20 on the
      whole image rather than windows (§3); here VOC-20 keeps the windows.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        **LastBlockCLIP.DEFAULTS,
        "attention": "kk",
        "kernel_sigma": 5.0,
        "residual": False,
        "ffn": False,
        "logit_scale": 40.0,
    }
