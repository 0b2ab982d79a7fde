"""Multi-resolution front-end: the global view, high-resolution slices, and restore / gather.

MROVSeg (arXiv 2408.14776, Sec. 3.3-3.4) feeds CLIP a low-resolution *global* view of the image
and ``S = m×n`` high-resolution *slices*. Choices for what the paper leaves open (DESIGN.md §2):

* the global view is the whole input resized (antialiased bilinear) to ``clip_size``²;
* slices are cut from the input at native resolution; slice side = ``p`` × input side, rounded
  to whole patches; ``ceil(1/p)`` slices per side, evenly spaced, so they overlap for p > 0.5
  (Table 3's "overlapped slicing"); ``p = 0`` means no slices (global view only) and ``p = 1``
  one slice, the full input at native resolution;
* slice tokens are *restored* to one token grid of the whole input (``H/patch × W/patch``);
  tokens of overlapping slices are averaged; ``gather`` is the inverse map from that grid back
  to per-slice token positions (used for the classifier's local attention masks), so that
  ``restore(gather(x)) == x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange


@dataclass(frozen=True)
class SliceLayout:
    """Where the slices of one input size lie, in patch-token units.

    Attributes:
        grid: restored token grid ``(Gh, Gw)`` of the whole input.
        slice_grid: token grid ``(gh, gw)`` of one slice.
        starts: token offsets ``(y0, x0)`` of each slice, row-major.
        patch: patch size in pixels.
    """

    grid: tuple[int, int]
    slice_grid: tuple[int, int]
    starts: tuple[tuple[int, int], ...]
    patch: int

    @property
    def num_slices(self) -> int:
        return len(self.starts)

    @property
    def slice_pixels(self) -> tuple[int, int]:
        return self.slice_grid[0] * self.patch, self.slice_grid[1] * self.patch

    def index(self, device: torch.device | None = None) -> torch.Tensor:
        """Flat grid index ``(S * gh * gw,)`` of every slice token, slice-major then row-major."""
        gh, gw = self.slice_grid
        ys = torch.arange(gh).view(gh, 1)
        xs = torch.arange(gw).view(1, gw)
        idx = [((y0 + ys) * self.grid[1] + (x0 + xs)).flatten() for y0, x0 in self.starts]
        return torch.cat(idx).to(device)


def _axis_starts(total: int, size: int) -> list[int]:
    count = math.ceil(total / size)
    if count == 1:
        return [0]
    return [round(i * (total - size) / (count - 1)) for i in range(count)]


class Slicer:
    """Builds the global view and the slices of a batch, and maps tokens between slices and grid.

    Args:
        ratio: slice ratio p = slice side / input side (0 = global view only).
        clip_size: side of the global view fed to CLIP (320 for the paper's 640² crops).
        patch_size: CLIP's patch size.
    """

    def __init__(self, ratio: float = 0.5, clip_size: int = 320, patch_size: int = 16) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"Slice ratio p must be in [0, 1], got {ratio}.")
        if clip_size % patch_size:
            raise ValueError(f"clip_size {clip_size} must be a multiple of the patch size {patch_size}.")
        self.ratio = float(ratio)
        self.clip_size = clip_size
        self.patch = patch_size

    def layout(self, height: int, width: int) -> SliceLayout | None:
        """The slice layout for an input of ``height × width`` pixels (None when p = 0)."""
        if height % self.patch or width % self.patch:
            raise ValueError(f"Input {height}×{width} is not a multiple of the patch size {self.patch}.")
        if self.ratio == 0.0:
            return None
        grid = (height // self.patch, width // self.patch)
        slice_grid = tuple(max(1, round(self.ratio * g)) for g in grid)
        ys = _axis_starts(grid[0], slice_grid[0])
        xs = _axis_starts(grid[1], slice_grid[1])
        starts = tuple((y, x) for y in ys for x in xs)
        return SliceLayout(grid=grid, slice_grid=slice_grid, starts=starts, patch=self.patch)

    def global_view(self, images: torch.Tensor) -> torch.Tensor:
        """``(B,3,H,W)`` → ``(B,3,clip_size,clip_size)``."""
        size = (self.clip_size, self.clip_size)
        if tuple(images.shape[-2:]) == size:
            return images
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)

    def slices(self, images: torch.Tensor, layout: SliceLayout) -> torch.Tensor:
        """``(B,3,H,W)`` → ``(B*S, 3, sh, sw)``, image-major (all slices of image 0 first)."""
        sh, sw = layout.slice_pixels
        p = layout.patch
        crops = [images[:, :, y * p : y * p + sh, x * p : x * p + sw] for y, x in layout.starts]
        return rearrange(torch.stack(crops, dim=1), "b s c h w -> (b s) c h w")

    @staticmethod
    def restore(tokens: torch.Tensor, layout: SliceLayout) -> torch.Tensor:
        """Per-slice tokens ``(B*S, gh*gw, D)`` → one grid ``(B, D, Gh, Gw)``; overlaps are averaged."""
        s = layout.num_slices
        b = tokens.shape[0] // s
        flat = rearrange(tokens, "(b s) l d -> b (s l) d", s=s)
        idx = layout.index(tokens.device)
        gh, gw = layout.grid
        out = flat.new_zeros(b, gh * gw, flat.shape[-1]).index_add_(1, idx, flat)
        count = torch.zeros(gh * gw, device=tokens.device, dtype=flat.dtype).index_add_(
            0, idx, torch.ones_like(idx, dtype=flat.dtype)
        )
        out = out / count.view(1, -1, 1)
        return rearrange(out, "b (h w) d -> b d h w", h=gh, w=gw)

    @staticmethod
    def gather(grid: torch.Tensor, layout: SliceLayout) -> torch.Tensor:
        """A grid ``(..., Gh, Gw)`` → per-slice token positions ``(..., S*gh*gw)`` (slice-major)."""
        idx = layout.index(grid.device)
        return grid.flatten(-2)[..., idx]
