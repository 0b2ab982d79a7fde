"""Set-prediction loss: classification with a void class plus point-sampled mask losses.

MROVSeg (arXiv 2408.14776) trains with the loss of Mask2Former (Cheng et al., CVPR 2022;
facebookresearch/Mask2Former, ``mask2former/modeling/criterion.py``), whose constants we keep:

- queries are matched to targets by :class:`~mrovseg.model.matcher.HungarianMatcher`;
- ``loss_ce``: cross-entropy over K+1 classes, unmatched queries are supervised as "void" (the
  last class), whose weight is ``void_weight = 0.1``; weighted mean over all queries;
- ``loss_mask`` / ``loss_dice``: sigmoid BCE and dice between each matched predicted mask and its
  target at ``num_points = 12544`` points chosen PointRend-style on the prediction: draw
  ``oversample_ratio · P`` uniform points (3.0), keep the ``importance_sample_ratio · P`` (75 %)
  most uncertain ones (uncertainty = −|logit|) and fill up with uniform points. Predictions
  (low resolution) and targets (full resolution) are both bilinearly sampled at those points;
- every term is summed over masks and divided by the number of target masks, averaged over
  processes and clamped to ≥ 1;
- deep supervision: the same terms for each entry of ``outputs['aux_outputs']``, suffixed
  ``_0``, ``_1``, … (each entry is matched on its own).

:meth:`SetCriterion.forward` returns the **unweighted** terms (handy for logging);
:meth:`SetCriterion.total` is the weighted sum to optimise (weights ``loss_ce 2, loss_mask 5,
loss_dice 5`` by default, applied alike to the suffixed deep-supervision terms).

Open vocabulary: K is read from ``outputs['pred_logits'].shape[-1] - 1`` at every call, so the
training vocabulary may change between calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from mrovseg.constants import IGNORE_INDEX
from mrovseg.model.matcher import HungarianMatcher, point_sample

#: ``point_sampler(mask_logits (N, 1, h, w)) -> (N, P, 2)`` normalised (x, y) points per mask.
MaskPointSampler = Callable[[Tensor], Tensor]
Targets = Sequence[dict[str, Tensor]]
Indices = list[tuple[Tensor, Tensor]]
Matcher = Callable[[dict[str, Tensor], Targets], Indices]

_AUX_SUFFIX = re.compile(r"_\d+$")


def uncertain_points(
    mask_logits: Tensor, num_points: int, oversample_ratio: float, importance_sample_ratio: float
) -> Tensor:
    """PointRend's ``get_uncertain_point_coords_with_randomness`` with uncertainty −|logit|.

    Args:
        mask_logits: ``(N, 1, h, w)``.
        num_points: Points per mask ``P``.
        oversample_ratio: Candidates drawn per kept point (≥ 1).
        importance_sample_ratio: Fraction of ``P`` taken as the most uncertain candidates.

    Returns:
        ``(N, P, 2)`` points in [0, 1]²: the uncertain ones first, then the uniform ones.
    """
    n = mask_logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    num_uncertain = int(importance_sample_ratio * num_points)
    candidates = torch.rand(n, num_candidates, 2, device=mask_logits.device)
    uncertainty = -point_sample(mask_logits, candidates)[:, 0].abs()  # (N, P·oversample)
    top = uncertainty.topk(num_uncertain, dim=1).indices  # (N, P_uncertain)
    coords = torch.gather(candidates, 1, top[..., None].expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        coords = torch.cat([coords, torch.rand(n, num_random, 2, device=mask_logits.device)], dim=1)
    return coords


def targets_from_semantic(labels: Tensor, ignore_index: int = IGNORE_INDEX) -> list[dict[str, Tensor]]:
    """Turns semantic label maps into per-image mask targets (one binary mask per present class).

    Args:
        labels: int64 ``(B, H, W)`` with values in ``[0, K) ∪ {ignore_index}``.
        ignore_index: Label of pixels that belong to no mask.

    Returns:
        Per image ``{'labels': int64 (n,) sorted, 'masks': float32 (n, H, W) in {0, 1}}``.
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be (B, H, W), got {tuple(labels.shape)}")
    targets = []
    for label in labels:
        classes = torch.unique(label[label != ignore_index])
        if classes.numel() and int(classes[0]) < 0:
            raise ValueError(f"negative label {int(classes[0])} that is not ignore_index={ignore_index}")
        masks = (label[None] == classes[:, None, None]).float()  # (n, H, W)
        targets.append({"labels": classes.long(), "masks": masks})
    return targets


def sigmoid_bce_loss(logits: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    """Mean BCE over points, summed over masks, divided by ``num_masks``. Inputs ``(N, P)``."""
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1).sum() / num_masks


def dice_loss(logits: Tensor, targets: Tensor, num_masks: float) -> Tensor:
    """Dice loss ``1 − (2|s∩t| + 1) / (|s| + |t| + 1)`` summed over masks / ``num_masks``. ``(N, P)``."""
    probs = logits.sigmoid()
    numerator = 2.0 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1.0 - (numerator + 1.0) / (denominator + 1.0)).sum() / num_masks


class SetCriterion(nn.Module):
    """Mask2Former's ``SetCriterion`` (see the module docstring for the terms and constants).

    Args:
        num_classes: Optional, informational only: K is read from ``pred_logits`` at every call.
        matcher: Query-to-target assignment; a default :class:`HungarianMatcher` if None.
        weight_dict: Weight of each base term, used by :meth:`total`.
        void_weight: Cross-entropy weight of the void class ("no object").
        num_points: Points per mask for BCE and dice.
        oversample_ratio: PointRend candidate oversampling.
        importance_sample_ratio: Fraction of points chosen by uncertainty.
        point_sampler: Optional ``mask_logits (N, 1, h, w) -> (N, P, 2)`` replacing the
            importance sampling (e.g. every pixel centre, for exact losses in tests).
    """

    def __init__(
        self,
        num_classes: int | None = None,
        matcher: Matcher | None = None,
        weight_dict: Mapping[str, float] | None = None,
        void_weight: float = 0.1,
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        point_sampler: MaskPointSampler | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher if matcher is not None else HungarianMatcher()
        self.weight_dict = dict(weight_dict or {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0})
        self.void_weight = void_weight
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.point_sampler = point_sampler

    def loss_labels(
        self, outputs: dict[str, Tensor], targets: Targets, indices: Indices, num_masks: float
    ) -> dict[str, Tensor]:
        """Cross-entropy over K+1 classes; unmatched queries target the void class."""
        logits = outputs["pred_logits"].float()  # (B, Q, K+1)
        void = logits.shape[-1] - 1
        target_classes = torch.full(logits.shape[:2], void, dtype=torch.int64, device=logits.device)
        for b, (pred_idx, tgt_idx) in enumerate(indices):
            target_classes[b, pred_idx.to(logits.device)] = targets[b]["labels"].to(logits.device)[tgt_idx]
        class_weight = torch.ones(void + 1, device=logits.device)
        class_weight[-1] = self.void_weight
        return {"loss_ce": F.cross_entropy(logits.transpose(1, 2), target_classes, class_weight)}

    def loss_masks(
        self, outputs: dict[str, Tensor], targets: Targets, indices: Indices, num_masks: float
    ) -> dict[str, Tensor]:
        """Point-sampled sigmoid BCE and dice between matched predictions and targets."""
        pred_masks = outputs["pred_masks"]  # (B, Q, h, w)
        batch_idx = torch.cat([torch.full_like(p, b) for b, (p, _) in enumerate(indices)])
        pred_idx = torch.cat([p for p, _ in indices])
        if pred_idx.numel() == 0:
            zero = pred_masks.sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero.clone()}
        src = pred_masks[batch_idx.to(pred_masks.device), pred_idx.to(pred_masks.device)]
        src = src.float()[:, None]  # (N, 1, h, w)
        with torch.no_grad():
            if self.point_sampler is not None:
                coords = self.point_sampler(src)
            else:
                coords = uncertain_points(
                    src, self.num_points, self.oversample_ratio, self.importance_sample_ratio
                )
            # Targets may differ in size between images: sample them image by image.
            labels, start = [], 0
            for b, (_, tgt_idx) in enumerate(indices):
                masks = targets[b]["masks"]
                masks = masks[tgt_idx.to(masks.device)].to(src.device, torch.float32)  # (n_b, H, W)
                stop = start + len(tgt_idx)
                labels.append(point_sample(masks[:, None], coords[start:stop])[:, 0])
                start = stop
            point_labels = torch.cat(labels)  # (N, P)
        point_logits = point_sample(src, coords)[:, 0]  # (N, P)
        return {
            "loss_mask": sigmoid_bce_loss(point_logits, point_labels, num_masks),
            "loss_dice": dice_loss(point_logits, point_labels, num_masks),
        }

    def _losses(self, outputs: dict[str, Tensor], targets: Targets, num_masks: float) -> dict[str, Tensor]:
        indices = self.matcher(outputs, targets)
        return {
            **self.loss_labels(outputs, targets, indices, num_masks),
            **self.loss_masks(outputs, targets, indices, num_masks),
        }

    def forward(self, outputs: dict, targets: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Computes all terms, unweighted.

        Args:
            outputs: ``pred_logits`` ``(B, Q, K+1)``, ``pred_masks`` ``(B, Q, h, w)`` and optionally
                ``aux_outputs``, a list of dicts with the same two keys.
            targets: Per image ``{'labels': (n,), 'masks': (n, H, W)}`` (see
                :func:`targets_from_semantic`).

        Returns:
            ``loss_ce``, ``loss_mask``, ``loss_dice`` and ``<term>_<i>`` for aux output ``i``.
        """
        num_masks = self.num_masks(targets, outputs["pred_logits"].device)
        losses = self._losses(outputs, targets, num_masks)
        for i, aux in enumerate(outputs.get("aux_outputs") or []):
            losses.update({f"{k}_{i}": v for k, v in self._losses(aux, targets, num_masks).items()})
        return losses

    def total(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Weighted sum of the terms; ``loss_ce_3`` uses the weight of ``loss_ce``, and so on.

        Terms without a weight in ``weight_dict`` are left out.
        """
        weighted = [
            self.weight_dict[_AUX_SUFFIX.sub("", k)] * v
            for k, v in losses.items()
            if _AUX_SUFFIX.sub("", k) in self.weight_dict
        ]
        if not weighted:
            raise ValueError(f"no term of {sorted(losses)} has a weight in {self.weight_dict}")
        return torch.stack(weighted).sum()

    @staticmethod
    def num_masks(targets: Sequence[dict[str, Tensor]], device: torch.device) -> float:
        """Target masks per process: the global count averaged over processes, at least 1."""
        count = torch.tensor(float(sum(len(t["labels"]) for t in targets)), device=device)
        world_size = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            world_size = dist.get_world_size()
        return max(count.item() / world_size, 1.0)

    def extra_repr(self) -> str:
        return (
            f"weight_dict={self.weight_dict}, void_weight={self.void_weight}, num_points={self.num_points}, "
            f"oversample_ratio={self.oversample_ratio}, importance_sample_ratio={self.importance_sample_ratio}"
        )
