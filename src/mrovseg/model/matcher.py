"""Hungarian matching between predicted masks and ground-truth masks.

MROVSeg (arXiv 2408.14776) trains its mask proposals with the set-prediction loss of
Mask2Former (Cheng et al., CVPR 2022; facebookresearch/Mask2Former,
``mask2former/modeling/matcher.py``). The matching cost for query ``q`` and target ``t`` is

    C[q, t] = -w_class · p_q(c_t) + w_mask · BCE(m_q, m_t) + w_dice · Dice(m_q, m_t),

with ``p_q`` the softmax over the K+1 logits (the last one is "void"), and BCE / dice computed on
``num_points`` random points shared by all predictions and targets of one image (uniform in
[0, 1]², bilinear ``grid_sample`` with ``align_corners=False``). Mask2Former's defaults are
``w_class=2, w_mask=5, w_dice=5`` and ``num_points = 112² = 12544``.

The assignment is solved with ``scipy.optimize.linear_sum_assignment`` on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

#: ``point_sampler(num_points, device) -> (P, 2)`` coordinates in [0, 1]² as (x, y).
PointSampler = Callable[[int, torch.device], Tensor]


def point_sample(inputs: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly samples maps at normalised points (PointRend / Mask2Former ``point_sample``).

    Args:
        inputs: Maps ``(N, C, H, W)``.
        coords: Points ``(N, P, 2)`` as (x, y) in [0, 1]², 0 and 1 being the outer image edges.

    Returns:
        Sampled values ``(N, C, P)``. Points outside pixel centres near the border blend with zero
        padding, as in Mask2Former.
    """
    grid = 2.0 * coords.unsqueeze(2) - 1.0  # (N, P, 1, 2) in [-1, 1]
    return F.grid_sample(inputs, grid.to(inputs.dtype), mode="bilinear", align_corners=False).squeeze(3)


def pixel_centres(height: int, width: int, device: torch.device | str | None = None) -> Tensor:
    """The centres of all pixels of a ``height × width`` grid as normalised (x, y) points ``(H·W, 2)``.

    Sampling a map of exactly this size at these points returns its pixel values unchanged, which
    makes point-sampled losses exact (used by the tests and for deterministic evaluation).
    """
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1)


class PixelGrid:
    """A deterministic sampler: the centres of a fixed ``height × width`` grid instead of random points.

    Serves both samplers of the set-prediction loss (``criterion.point_sampler=grid`` in the configs):
    called with ``(num_points, device)`` by :class:`HungarianMatcher` it returns the ``(H·W, 2)`` centres
    (``num_points`` is ignored); called with mask logits ``(N, 1, h, w)`` by
    :class:`~mrovseg.model.criterion.SetCriterion` it returns them for every mask, ``(N, H·W, 2)``. On a
    grid as fine as the targets (the toy world's 64² crops) the mask losses become the exact dense
    losses, with no random draw in the loss; Mask2Former's PointRend sampling (the default) is what
    keeps the loss affordable on 640² crops, where the dense loss is not.
    """

    def __init__(self, height: int, width: int | None = None) -> None:
        if height < 1 or (width is not None and width < 1):
            raise ValueError(f"PixelGrid: height and width must be >= 1, got {height} x {width}")
        self.height, self.width = height, width if width is not None else height

    def __call__(self, what: int | Tensor, device: torch.device | str | None = None) -> Tensor:
        if isinstance(what, Tensor):  # the criterion's call: one grid per mask
            return pixel_centres(self.height, self.width, what.device).expand(what.shape[0], -1, -1)
        return pixel_centres(self.height, self.width, device)

    def __repr__(self) -> str:
        return f"PixelGrid({self.height}, {self.width})"


def uniform_points(num_points: int, device: torch.device) -> Tensor:
    """Default matcher sampler: ``num_points`` points uniform in [0, 1]², shape ``(P, 2)``."""
    return torch.rand(num_points, 2, device=device)


def pairwise_sigmoid_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of every prediction against every target.

    Args:
        logits: Point logits ``(Q, P)``.
        targets: Point targets in [0, 1], ``(T, P)``.

    Returns:
        Cost ``(Q, T)``.
    """
    pos = F.softplus(-logits)  # -log σ(x): BCE against target 1
    neg = F.softplus(logits)  # -log(1 − σ(x)): BCE against target 0
    return (pos @ targets.T + neg @ (1.0 - targets).T) / logits.shape[-1]


def pairwise_dice(logits: Tensor, targets: Tensor) -> Tensor:
    """Dice loss ``1 − (2|s∩t| + 1) / (|s| + |t| + 1)`` of every prediction against every target.

    Args:
        logits: Point logits ``(Q, P)``.
        targets: Point targets in [0, 1], ``(T, P)``.

    Returns:
        Cost ``(Q, T)``.
    """
    probs = logits.sigmoid()
    numerator = 2.0 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to ground-truth masks (Mask2Former's ``HungarianMatcher``).

    Args:
        cost_class: Weight of the negative class probability.
        cost_mask: Weight of the point-sampled sigmoid BCE.
        cost_dice: Weight of the point-sampled dice loss.
        num_points: Number of random points per image.
        point_sampler: Optional ``(num_points, device) -> (P, 2)`` replacing the uniform random
            points (e.g. ``lambda n, d: pixel_centres(h, w, d)`` for an exact, deterministic cost).
    """

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        num_points: int = 12544,
        point_sampler: PointSampler | None = None,
    ) -> None:
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("all matching costs are 0")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points
        self.point_sampler = point_sampler or uniform_points

    @torch.no_grad()
    def cost_matrices(self, outputs: dict[str, Tensor], targets: Sequence[dict[str, Tensor]]) -> list[Tensor]:
        """The matching cost of each image.

        Args:
            outputs: ``pred_logits`` ``(B, Q, K+1)`` and ``pred_masks`` ``(B, Q, h, w)`` (logits).
            targets: Per image, ``labels`` int64 ``(n,)`` and ``masks`` ``(n, H, W)`` in {0, 1}.

        Returns:
            One float32 CPU tensor ``(Q, n)`` per image.
        """
        pred_logits, pred_masks = outputs["pred_logits"], outputs["pred_masks"]
        costs = []
        with torch.autocast(device_type=pred_masks.device.type, enabled=False):
            for b, target in enumerate(targets):
                labels = target["labels"].to(pred_logits.device)
                num_queries = pred_logits.shape[1]
                if labels.numel() == 0:
                    costs.append(torch.zeros(num_queries, 0))
                    continue
                probs = pred_logits[b].float().softmax(-1)  # (Q, K+1)
                cost = -self.cost_class * probs[:, labels]  # (Q, n)
                if self.cost_mask or self.cost_dice:
                    coords = self.point_sampler(self.num_points, pred_masks.device).float()  # (P, 2)
                    out = point_sample(pred_masks[b].float()[:, None], coords.expand(num_queries, -1, -1))
                    tgt_masks = target["masks"].to(pred_masks.device, torch.float32)[:, None]
                    tgt = point_sample(tgt_masks, coords.expand(len(labels), -1, -1))
                    out, tgt = out[:, 0], tgt[:, 0]  # (Q, P), (n, P)
                    cost = cost + self.cost_mask * pairwise_sigmoid_bce(out, tgt)
                    cost = cost + self.cost_dice * pairwise_dice(out, tgt)
                costs.append(cost.cpu())
        return costs

    @torch.no_grad()
    def forward(
        self, outputs: dict[str, Tensor], targets: Sequence[dict[str, Tensor]]
    ) -> list[tuple[Tensor, Tensor]]:
        """Matches queries to targets, image by image.

        Args:
            outputs: See :meth:`cost_matrices`.
            targets: See :meth:`cost_matrices`.

        Returns:
            Per image ``(pred_idx, tgt_idx)``, two int64 CPU tensors of length ``min(Q, n)``;
            ``pred_idx`` is sorted. Both are empty for an image without targets.
        """
        indices = []
        for cost in self.cost_matrices(outputs, targets):
            if cost.shape[1] == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            rows, cols = linear_sum_assignment(cost.numpy())
            indices.append(
                (torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64))
            )
        return indices

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_mask={self.cost_mask}, "
            f"cost_dice={self.cost_dice}, num_points={self.num_points}"
        )
