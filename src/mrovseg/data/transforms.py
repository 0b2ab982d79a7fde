"""Training augmentation (albumentations) and evaluation resizing.

Training, as in SAN / Mask2Former on COCO-Stuff, which MROVSeg follows (§4.1: images "randomly resized to
[0.5, 2.0]×", then "randomly cropped into the resolution of 640²"):

1. resize so the short side is ``base_size × s``, ``s ~ U[scale_range]`` (image bilinear, area when
   shrinking; label nearest with pixel-centre alignment, ``INTER_NEAREST_EXACT``: OpenCV's plain
   ``INTER_NEAREST`` samples pixel corners and shifts labels against the bilinear image);
2. pad to the crop size where smaller (image 0, label ``IGNORE_INDEX``), top-left aligned;
3. random crop to ``crop_size``;
4. horizontal flip with probability 0.5;
5. photometric distortion, each step with probability 0.5 as in mmseg's ``PhotoMetricDistortion`` /
   detectron2's ``ColorAugSSDTransform``: brightness ±32, contrast ×[0.5, 1.5] (around the mean),
   saturation ×[0.5, 1.5], hue ±18° of OpenCV's 180 (±0.1 of the circle).

The scale is relative to a base short side (``base_size``, default the crop side: SAN's
``ResizeShortestEdge`` with short sides 320..1280 for a 640 crop; mmseg's ``RandomResize`` likewise scales a
fixed base). The paper's text says "of its original resolution"; ``relative_to_image=True`` does that.

Evaluation: the image is resized so its short side is ``short_side`` (optionally capping the long side,
as detectron2's ``ResizeShortestEdge``); the label is left at its original resolution for scoring.

Labels travel through the pipeline as ``int32`` with ``IGNORE_INDEX`` (-1), a dtype OpenCV resizes,
pads and flips without loss; the dataset turns them into ``int64`` at the end.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import get_worker_info

from mrovseg.constants import IGNORE_INDEX

__all__ = ["EvalTransform", "TrainTransform", "resize_short_side"]


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


class TrainTransform:
    """Random resize, pad, crop, flip and photometric distortion of an (image, label) pair.

    Args:
        crop_size: Output size, ``int`` or ``(height, width)``.
        base_size: Short side at scale 1.0; defaults to the (shorter) crop side.
        scale_range: Range of the random scale factor ``s`` (short side = ``base_size × s``).
        hflip_prob: Probability of a horizontal flip.
        photometric: Apply the photometric distortion.
        relative_to_image: Scale each image's own size by ``s`` instead of setting its short side to
            ``base_size × s``.
        seed: Seed of the augmentation RNG. By default each DataLoader worker seeds it from its
            torch worker seed (so workers differ and ``seed_everything`` makes runs repeatable);
            albumentations' ``Compose`` keeps its own RNG, which forked workers would otherwise share.
    """

    def __init__(
        self,
        crop_size: int | Sequence[int] = 640,
        base_size: int | None = None,
        scale_range: Sequence[float] = (0.5, 2.0),
        hflip_prob: float = 0.5,
        photometric: bool = True,
        relative_to_image: bool = False,
        seed: int | None = None,
    ) -> None:
        self.crop_size = _pair(crop_size)
        self.base_size = int(base_size) if base_size else min(self.crop_size)
        lo, hi = (float(v) for v in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = (lo, hi)
        ch, cw = self.crop_size
        resize: A.BasicTransform
        if relative_to_image:
            resize = A.RandomScale(
                scale_limit=(lo - 1.0, hi - 1.0),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST_EXACT,
                area_for_downscale="image",
                p=1.0,
            )
        else:
            lo_side, hi_side = max(1, round(lo * self.base_size)), max(1, round(hi * self.base_size))
            resize = A.SmallestMaxSize(
                max_size=list(range(lo_side, hi_side + 1)),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST_EXACT,
                area_for_downscale="image",
            )
        steps: list[A.BasicTransform] = [
            resize,
            A.PadIfNeeded(
                min_height=ch,
                min_width=cw,
                position="top_left",
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=IGNORE_INDEX,
            ),
            A.RandomCrop(height=ch, width=cw),
            A.HorizontalFlip(p=hflip_prob),
        ]
        if photometric:
            steps += photometric_distortion()
        self.pipeline = A.Compose(steps, seed=seed)
        self._fixed_seed = seed is not None
        self._seeded_for: tuple[int, int] | None = None

    def _reseed_in_worker(self) -> None:
        info = get_worker_info()
        seed = info.seed if info is not None else torch.initial_seed()
        key = (os.getpid(), seed)
        if key != self._seeded_for:
            self.pipeline.set_random_seed(seed % 2**32)
            self._seeded_for = key

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augments one pair.

        Args:
            image: ``uint8 (H, W, 3)`` RGB.
            label: ``int32 (H, W)`` with values in ``[0, K) ∪ {IGNORE_INDEX}``.

        Returns:
            ``(image uint8 (h, w, 3), label int32 (h, w))`` with ``(h, w) = crop_size``.
        """
        if not self._fixed_seed:
            self._reseed_in_worker()
        out = self.pipeline(image=image, mask=label.astype(np.int32, copy=False))
        return out["image"], out["mask"]


def photometric_distortion() -> list[A.BasicTransform]:
    """Brightness, contrast, saturation and hue jitter, each applied with probability 0.5."""
    return [
        A.RandomBrightnessContrast(brightness_limit=32 / 255, contrast_limit=0.0, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.5, p=0.5),
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(0.5, 1.5), hue=(0, 0), p=0.5),
        A.ColorJitter(brightness=(1, 1), contrast=(1, 1), saturation=(1, 1), hue=(-0.1, 0.1), p=0.5),
    ]


def resize_short_side(image: np.ndarray, short_side: int, max_long_side: int | None = None) -> np.ndarray:
    """Resizes an image so its short side is ``short_side``, keeping the aspect ratio.

    The long side is capped at ``max_long_side`` when given (detectron2's ``ResizeShortestEdge``
    rule, sizes rounded half up). Shrinking uses area interpolation, enlarging bilinear.
    """
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    if max_long_side is not None and max(h, w) * scale > max_long_side:
        scale = max_long_side / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    if (new_h, new_w) == (h, w):
        return image
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, (new_w, new_h), interpolation=interp)


class EvalTransform:
    """Resizes the image (short side → ``short_side``) and keeps the label at its original size.

    Args:
        short_side: Target short side of the image (640 for the OV benchmarks, 1024 for Cityscapes).
        max_long_side: Optional cap on the long side.
    """

    def __init__(self, short_side: int = 640, max_long_side: int | None = None) -> None:
        self.short_side = int(short_side)
        self.max_long_side = int(max_long_side) if max_long_side else None

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return resize_short_side(image, self.short_side, self.max_long_side), label
