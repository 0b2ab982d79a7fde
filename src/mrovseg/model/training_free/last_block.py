"""One training-free family: frozen CLIP with its last block rebuilt by a few switches.

MaskCLIP, SCLIP, ClearCLIP and NACLIP all keep blocks ``1 … L−1`` of a frozen CLIP ViT as they are and
change only the last one (``../shared/papers/training-free-facts.md`` §1, read from each method's public
code). In that sheet's notation (§0): ``X`` ``(1+N, D)`` enters the last block, token 0 is [CLS];
``Z = LN1(X)``; per head ``Q = ZW_q + b_q``, ``K = ZW_k + b_k``, ``V = ZW_v + b_v`` (head width ``d``,
``s = d^-1/2``, never L2-normalised); ``O = concat_h(A_h V_h) W_o + b_o``. The switches:

* ``attention`` — the attention matrix ``A``:

  - ``qk``: ``softmax(s QKᵀ)``, CLIP's own;
  - ``qq``: ``softmax(s QQᵀ)`` (ClearCLIP);
  - ``kk``: ``softmax(s KKᵀ)`` (NACLIP with ``kernel_sigma``);
  - ``qq+kk``: ``softmax(s QQᵀ) + softmax(s KKᵀ)``, summed, not averaged: rows sum to 2 (SCLIP);
  - ``value``: ``A = I``, so ``O = VW_o + b_o`` per token (MaskCLIP; :class:`DenseCLIP`).
* ``kernel_sigma`` — σ of NACLIP's neighbourhood kernel ``Ω_ij = exp(−‖p_i − p_j‖² / (2σ²))`` over the
  patch positions ``p`` (patch units), added to the logits of every softmax after the ``s``-scaling; 0 on
  the [CLS] row and column; not normalised (1 on the diagonal), over the whole grid
  (:func:`gaussian_kernel`).
* ``attn_scale`` — ``s`` (None: ``d^-1/2``, what all four use).
* ``residual`` — ``Y = X + O`` (CLIP, SCLIP, MaskCLIP as its code runs) or ``Y = O`` (ClearCLIP, NACLIP).
* ``ffn`` — ``Y ← Y + FFN(LN2(Y))`` or not.

The head is CLIP's: ``F = LN_post(Y) W_proj`` on the patch rows ([CLS] dropped), L2-normalised, cosine
with the text embeddings ``t_c``. How scores leave a window and become labels:

* ``merge="logits"`` (the three papers' protocol, facts §3): :meth:`semantic_scores` returns the raw
  cosines, the shared sliding window averages them where windows overlap, and :meth:`refine_scores` —
  called once per image on the merged ``(K, h, w)`` map — applies ``post``, then ``softmax(τ · cos)`` over
  the vocabulary, then ``prob_threshold``. ``merge="probabilities"`` (dense CLIP as this package always
  ran it): each window is turned into ``softmax(τ · cos)`` and the probabilities are averaged.
* ``logit_scale`` — τ (None: CLIP's learned ``exp(logit_scale)``, 100 for OpenAI's weights). Without a
  threshold τ does not change a label (softmax keeps the order); SCLIP uses 40, ClearCLIP 50, NACLIP 40.
* ``post="pamr"`` — PAMR (:mod:`.pamr`; ``pamr_steps`` 10, ``pamr_dilations`` (8, 16) as in NACLIP's
  and SCLIP's code) on the merged cosines with the working image, chunked over classes.
* ``prob_threshold`` — pixels whose largest probability is below it become class 0 (the background entry
  of VOC-21 / PC-60 / COCO-Object; 0 = off, the value for vocabularies without a background).
* ``view_size`` — each window resized to this side before CLIP (None: CLIP runs at the window's own size,
  the positional embedding interpolated).

Choices this implementation makes where the papers' protocol is not followed to the letter (each written
in BENCHMARKS.md, "Training-free CLIP"): PAMR and the threshold run at the working resolution (after the
``short_side`` resize), before the bilinear resize to the label's size, where the repositories run them
after it; a class with synonyms (``"sofa, couch"``) is one mean text embedding (this package's one rule,
:mod:`mrovseg.model.text_encoder`), where SCLIP/NACLIP take the max over names after the softmax; the
positional embedding is resized to the grid by size, not by their ``scale_factor=(g+0.1)/14``, and not at
all at the native grid; the windows are spread evenly (:func:`~mrovseg.model.inference.window_starts`), not
at multiples of the stride with the last one flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mrovseg.model.clip_backbone import CLIPBackbone
from mrovseg.model.training_free.pamr import pamr

#: The attention forms: the (left, right) projection pairs whose softmaxes are summed; ``value``: A = I.
ATTENTION_FORMS: dict[str, tuple[tuple[str, str], ...]] = {
    "qk": (("q", "k"),),
    "qq": (("q", "q"),),
    "kk": (("k", "k"),),
    "qq+kk": (("q", "q"), ("k", "k")),
    "value": (),
}
MERGES = ("logits", "probabilities")
POSTS = (None, "pamr")


class _MethodDefault:
    """The default of every switch of :class:`LastBlockCLIP`: the class's :attr:`~LastBlockCLIP.DEFAULTS`."""

    def __repr__(self) -> str:
        return "<the method's default>"


_DEFAULT: Any = _MethodDefault()


def gaussian_kernel(grid: tuple[int, int], sigma: float, device: Any = None) -> torch.Tensor:
    """NACLIP's additive attention term ``Ω`` ``(1 + gh·gw, 1 + gh·gw)`` for a patch grid (float32).

    ``Ω_ij = exp(−‖p_i − p_j‖² / (2σ²))`` between patches ``i``, ``j`` at grid positions ``p`` (row,
    column, in patches); 0 on the [CLS] row and column.
    """
    gh, gw = grid
    rows, cols = torch.meshgrid(
        torch.arange(gh, device=device), torch.arange(gw, device=device), indexing="ij"
    )
    pos = torch.stack([rows.flatten(), cols.flatten()], dim=-1).float()
    dist2 = (pos[:, None, :] - pos[None, :, :]).pow(2).sum(-1)
    out = torch.zeros(1 + gh * gw, 1 + gh * gw, device=device)
    out[1:, 1:] = torch.exp(-dist2 / (2.0 * float(sigma) ** 2))
    return out


def attend_heads(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attention: str,
    bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Per-head ``A V`` ``(N, heads, T, d)`` for an attention form of :data:`ATTENTION_FORMS`.

    Each softmax is ``softmax(scale · a bᵀ + bias)`` (``scale`` None: ``d^-1/2``); ``qq+kk`` sums the two
    ``A V`` (= ``(A_qq + A_kk) V``); ``value`` returns ``v``.
    """
    if attention == "value":
        return v
    proj = {"q": q, "k": k}
    mask = bias.to(q.dtype) if bias is not None else None
    out: torch.Tensor | None = None
    for left, right in ATTENTION_FORMS[attention]:
        o = F.scaled_dot_product_attention(proj[left], proj[right], v, attn_mask=mask, scale=scale)
        out = o if out is None else out + o
    assert out is not None
    return out


class LastBlockCLIP(nn.Module):
    """Frozen CLIP whose last block is rebuilt by switches (see the module docstring); no parameters.

    Every switch defaults to the class's :attr:`DEFAULTS` (CLIP's own last block here; each method's in
    its subclass, :mod:`.methods`), so a method's config names its settings and any of them may be
    overridden (``model.residual=true``).

    Args:
        backbone: the frozen CLIP.
        attention: ``qk`` | ``qq`` | ``kk`` | ``qq+kk`` | ``value``.
        kernel_sigma: σ of the neighbourhood kernel in patches; None = no kernel.
        attn_scale: ``s``; None = ``d^-1/2``.
        residual: keep the last block's residual ``X +``.
        ffn: keep the last block's FFN (with its own residual).
        logit_scale: τ; None = CLIP's learned scale.
        merge: ``logits`` (average window cosines, softmax per image) or ``probabilities``.
        post: None or ``pamr``.
        pamr_steps: PAMR iterations.
        pamr_dilations: PAMR neighbourhood dilations in pixels.
        prob_threshold: below it a pixel becomes class 0; 0 = off.
        view_size: window side CLIP sees; None = the window's own.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "attention": "qk",
        "kernel_sigma": None,
        "attn_scale": None,
        "residual": True,
        "ffn": True,
        "logit_scale": None,
        "merge": "logits",
        "post": None,
        "pamr_steps": 10,
        "pamr_dilations": (8, 16),
        "prob_threshold": 0.0,
        "view_size": None,
    }

    def __init__(
        self,
        backbone: CLIPBackbone,
        attention: str = _DEFAULT,
        kernel_sigma: float | None = _DEFAULT,
        attn_scale: float | None = _DEFAULT,
        residual: bool = _DEFAULT,
        ffn: bool = _DEFAULT,
        logit_scale: float | None = _DEFAULT,
        merge: str = _DEFAULT,
        post: str | None = _DEFAULT,
        pamr_steps: int = _DEFAULT,
        pamr_dilations: Sequence[int] = _DEFAULT,
        prob_threshold: float = _DEFAULT,
        view_size: int | None = _DEFAULT,
    ) -> None:
        super().__init__()
        given = {k: v for k, v in locals().items() if k in self.DEFAULTS and v is not _DEFAULT}
        opts = {**self.DEFAULTS, **given}
        self.backbone = backbone
        self.attention = str(opts["attention"])
        self.kernel_sigma = None if opts["kernel_sigma"] is None else float(opts["kernel_sigma"])
        self.attn_scale = None if opts["attn_scale"] is None else float(opts["attn_scale"])
        self.residual, self.ffn = bool(opts["residual"]), bool(opts["ffn"])
        self.tau = None if opts["logit_scale"] is None else float(opts["logit_scale"])
        self.merge = str(opts["merge"])
        self.post = None if opts["post"] in (None, "none", "null") else str(opts["post"])
        self.pamr_steps = int(opts["pamr_steps"])
        self.pamr_dilations = tuple(int(d) for d in opts["pamr_dilations"])
        self.prob_threshold = float(opts["prob_threshold"])
        self.view_size = None if opts["view_size"] is None else int(opts["view_size"])
        self._check()
        self._kernels: dict[tuple, torch.Tensor] = {}

    def _check(self) -> None:
        name = type(self).__name__
        if self.attention not in ATTENTION_FORMS:
            raise ValueError(
                f"{name}: attention must be one of {sorted(ATTENTION_FORMS)}, got {self.attention!r}."
            )
        if self.kernel_sigma is not None and (self.attention == "value" or self.kernel_sigma <= 0):
            raise ValueError(
                f"{name}: kernel_sigma needs a softmax attention and σ > 0 (got {self.kernel_sigma})."
            )
        if self.merge not in MERGES:
            raise ValueError(f"{name}: merge must be one of {MERGES}, got {self.merge!r}.")
        if self.post not in POSTS:
            raise ValueError(f"{name}: post must be null or 'pamr', got {self.post!r}.")
        if self.pamr_steps < 0 or not self.pamr_dilations or min(self.pamr_dilations) < 1:
            raise ValueError(f"{name}: pamr_steps ≥ 0 and positive pamr_dilations needed.")
        if not 0.0 <= self.prob_threshold < 1.0:
            raise ValueError(f"{name}: prob_threshold must be in [0, 1), got {self.prob_threshold}.")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return []

    def extra_repr(self) -> str:
        keys = ("attention", "kernel_sigma", "residual", "ffn", "tau", "merge", "post", "prob_threshold")
        return ", ".join(f"{k}={getattr(self, k)}" for k in keys)

    @property
    def logit_scale(self) -> torch.Tensor | float:
        """τ: the configured one, else CLIP's learned scale."""
        return self.backbone.logit_scale if self.tau is None else self.tau

    # ------------------------------------------------------------------ the last block
    def kernel(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor | None:
        """``Ω`` for a grid (cached), or None without ``kernel_sigma``."""
        if self.kernel_sigma is None:
            return None
        key = (tuple(grid), str(device))
        if key not in self._kernels:
            self._kernels[key] = gaussian_kernel(grid, self.kernel_sigma, device)
        return self._kernels[key]

    def last_block(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The rebuilt last block: tokens ``X`` ``(N, 1 + gh·gw, D)`` entering it → ``Y`` (same shape)."""
        bb = self.backbone
        block = bb.blocks[-1]
        q, k, v = bb.qkv(block, x)
        heads = attend_heads(q, k, v, self.attention, self.kernel(grid, x.device), self.attn_scale)
        return bb.block_tail(block, x, bb.project_heads(block, heads), residual=self.residual, ffn=self.ffn)

    @torch.no_grad()
    def patch_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] → L2-normalised patch embeddings ``(B, E, gh, gw)``."""
        bb = self.backbone
        x = bb.normalize(images)
        if self.view_size is not None and tuple(x.shape[-2:]) != (self.view_size, self.view_size):
            size = (self.view_size, self.view_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        tokens, grid = bb.embed(x)
        for block in bb.blocks[:-1]:  # blocks 1 … L−1 unchanged
            tokens, _, _ = bb.block_forward(block, tokens)
        y = self.last_block(tokens, grid)
        emb = F.normalize(bb.head(y[:, 1:]).float(), dim=-1)
        gh, gw = grid
        return rearrange(emb, "b (h w) e -> b e h w", h=gh, w=gw)

    # ------------------------------------------------------------------ scores
    def semantic_scores(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        """Per-patch ``(B, K, gh, gw)``: cosines (``merge="logits"``) or ``softmax(τ · cos)``."""
        emb = self.patch_embeddings(images)
        cos = torch.einsum("behw,ke->bkhw", emb, text_embeddings.float())
        if self.merge == "logits":
            return cos
        return (cos * self.logit_scale).softmax(dim=1)

    @torch.no_grad()
    def refine_scores(self, image: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """The per-image step after the windows are merged: ``(3, h, w)`` image in [0, 1] and merged
        ``(K, h, w)`` scores → class probabilities ``(K, h, w)`` (``scores`` is reused in place)."""
        if self.post == "pamr":
            guide = self.backbone.normalize(image[None].float())[0]
            scores = pamr(guide, scores.float(), self.pamr_steps, self.pamr_dilations)
        if self.merge == "logits":  # softmax(τ · cos) over the vocabulary, in place
            scores = scores.float().mul_(float(self.logit_scale))
            scores.sub_(scores.amax(dim=0, keepdim=True)).exp_()
            scores.div_(scores.sum(dim=0, keepdim=True))
        if self.prob_threshold > 0:
            low = scores.amax(dim=0) < self.prob_threshold
            scores[0].masked_fill_(low, 1.0)  # class 0 wins where no class is sure enough
        return scores

    def forward(self, images: torch.Tensor, text_embeddings: torch.Tensor) -> dict[str, Any]:
        return {"scores": self.semantic_scores(images, text_embeddings)}
