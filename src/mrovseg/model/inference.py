"""Semantic inference and the one sliding-window routine shared by eval and predict.

* ``semantic_inference``: ``S = softmax(C)[:, :K]ᵀ · sigmoid(M)`` (Eq. 9 with Mask2Former's
  semantic inference): per-class scores ``(B, K, h, w)``.
* ``sliding_window``: covers an image of any size with overlapping windows of the train crop
  size (images smaller than a window are padded), runs the model on batches of windows, and
  averages the per-class scores where windows overlap. Peak memory is bounded by the window
  batch plus the ``(K, H, W)`` score map of the (already resized) image.
* ``refine_scores``: the model's own per-image step on the merged map, if it has one (the training-free
  family: softmax after merging, PAMR, a background threshold); other models' scores pass unchanged.
* ``upsample_argmax``: resizes scores to the label's resolution and takes the argmax in row
  chunks, so a large original image never needs a full ``(K, H, W)`` map at its resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def semantic_inference(pred_logits: torch.Tensor, pred_masks: torch.Tensor) -> torch.Tensor:
    """``(B, N, K+1)`` logits and ``(B, N, h, w)`` mask logits → class scores ``(B, K, h, w)``."""
    probs = pred_logits.float().softmax(dim=-1)[..., :-1]
    return torch.einsum("bnk,bnhw->bkhw", probs, pred_masks.float().sigmoid())


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with windows of ``window`` and at most ``stride`` apart."""
    if length <= window:
        return [0]
    count = math.ceil((length - window) / stride) + 1
    return [round(i * (length - window) / (count - 1)) for i in range(count)]


def sliding_window(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    window: int,
    overlap: float = 1 / 3,
    window_batch: int = 4,
    flip: bool = False,
) -> torch.Tensor:
    """Per-class scores of a whole image from overlapping windows.

    Args:
        score_fn: maps windows ``(n, 3, window, window)`` in [0, 1] to scores ``(n, K, h, w)`` (any
            h, w: they are resized to the window).
        image: ``(3, H, W)`` in [0, 1].
        window: window side (the train crop).
        overlap: fraction of a window shared with its neighbour.
        window_batch: windows per ``score_fn`` call.
        flip: test-time augmentation: also score the horizontally flipped image and average the two
            score maps (the second flipped back): 2× the forwards.

    Returns:
        ``(K, H, W)`` scores averaged over the windows covering each pixel (and over both flips).
    """
    if flip:
        scores = sliding_window(score_fn, image, window, overlap, window_batch)
        mirrored = sliding_window(score_fn, image.flip(-1), window, overlap, window_batch)
        return scores.add_(mirrored.flip(-1)).mul_(0.5)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"Expected an image of shape (3, H, W), got {tuple(image.shape)}.")
    _, h, w = image.shape
    ph, pw = max(h, window), max(w, window)
    if (ph, pw) != (h, w):  # pad small images (bottom/right) to one window
        image = F.pad(image, (0, pw - w, 0, ph - h), value=0.0)
    stride = max(1, int(window * (1 - overlap)))
    boxes = [(y, x) for y in window_starts(ph, window, stride) for x in window_starts(pw, window, stride)]
    scores: torch.Tensor | None = None
    count = torch.zeros(1, ph, pw, device=image.device)
    for i in range(0, len(boxes), window_batch):
        chunk = boxes[i : i + window_batch]
        crops = torch.stack([image[:, y : y + window, x : x + window] for y, x in chunk])
        out = score_fn(crops).float()
        if out.shape[-2:] != (window, window):
            out = F.interpolate(out, size=(window, window), mode="bilinear", align_corners=False)
        if scores is None:
            scores = torch.zeros(out.shape[1], ph, pw, device=image.device)
        for (y, x), s in zip(chunk, out):
            scores[:, y : y + window, x : x + window] += s
            count[:, y : y + window, x : x + window] += 1
    assert scores is not None
    return scores.div_(count)[:, :h, :w]  # in place: no second (K, H, W) map


def refine_scores(model: object, image: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """``model.refine_scores(image, scores)`` where the model has it, else ``scores``: the step after
    :func:`sliding_window` on the whole ``(3, H, W)`` image and its merged ``(K, H, W)`` scores."""
    refine = getattr(model, "refine_scores", None)
    return scores if refine is None else refine(image, scores)


def _linear_weights(out_len: int, in_len: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Source indices and weights of 1-D linear interpolation as ``F.interpolate(align_corners=False)``."""
    pos = (
        (torch.arange(out_len, device=device, dtype=torch.float32) + 0.5) * (in_len / out_len) - 0.5
    ).clamp(min=0)
    lo = pos.floor().long().clamp(max=in_len - 1)
    hi = (lo + 1).clamp(max=in_len - 1)
    return lo, hi, pos - lo.float()


def upsample_argmax(scores: torch.Tensor, size: tuple[int, int], chunk_rows: int = 32) -> torch.Tensor:
    """Bilinearly resizes ``(K, h, w)`` scores to ``size`` and returns the argmax label map ``(H, W)``.

    Equal to ``F.interpolate(scores[None], size, mode="bilinear").argmax(1)[0]``, computed in
    horizontal bands so memory stays ``O(K · chunk_rows · W)`` instead of ``O(K · H · W)``. The classes
    are the last, contiguous axis (``(rows, W, K)`` bands): the column gathers copy whole score vectors and
    the argmax reduces contiguous memory: 3× faster on a 6000 × 4000 output than class-first bands, with
    the same arithmetic per element (BENCHMARKS.md, "Whole-image inference").
    """
    _, h, w = scores.shape
    out_h, out_w = size
    if (h, w) == (out_h, out_w):
        return scores.argmax(dim=0)
    scores = scores.float().permute(1, 2, 0).contiguous()  # (h, w, K): small, the working resolution
    ylo, yhi, yf = _linear_weights(out_h, h, scores.device)
    xlo, xhi, xf = _linear_weights(out_w, w, scores.device)
    xf = xf.view(1, -1, 1)
    labels = torch.empty(out_h, out_w, dtype=torch.long, device=scores.device)
    for y0 in range(0, out_h, chunk_rows):
        band_rows = slice(y0, min(out_h, y0 + chunk_rows))
        f = yf[band_rows].view(-1, 1, 1)
        rows = scores[ylo[band_rows]] * (1 - f) + scores[yhi[band_rows]] * f  # (rows, w, K)
        band = rows[:, xlo] * (1 - xf) + rows[:, xhi] * xf  # (rows, out_w, K)
        labels[band_rows] = band.argmax(dim=-1)
    return labels
