"""Stage 2 of OVSeg: masked-region crops classified by CLIP, with mask prompt tuning.

OVSeg (Liang et al., CVPR 2023, arXiv 2210.04150; public code facebookresearch/ov-seg,
``open_vocab_seg/modeling/clip_adapter``) classifies each mask proposal with CLIP:

1. binarise the proposal (``sigmoid > mask_thr``), take its tight bounding box (no context);
2. crop the box from the image and resize it to CLIP's input size (bicubic), the mask with it
   (nearest); pixels outside the mask are filled with the *blank* value (CLIP's mean colour);
3. encode with the CLIP image tower; cosine similarity with the text embeddings.

*Mask prompt tuning* (MPT): a patch with no foreground pixel is "blank"
(``m_i = ceil(avgpool_p(mask))``); its token is replaced by a learnable prompt ``P[0, i]`` right
after the patch embedding (before [CLS] and the positional embedding), and again by ``P[d, i]``
before block ``d`` for ``d < prompt_depth``. CLIP's weights stay frozen; only ``P`` trains
(initialised N(0, 0.02); ov-seg ``third_party/CLIP/clip/model.py``). ``finetune=True`` gives the
paper's other variant: a trainable copy of CLIP's image tower, which then encodes the regions whole
(patch embedding, [CLS]/positional embedding, every block, head); CLIP's own tower stays frozen.

The tower is run by :class:`~mrovseg.model.clip_backbone.CLIPBackbone`'s methods (``patch_embed``,
``stem``, ``block_forward``, ``head``, given the copy as ``tower``); nothing here names open_clip's internals.

Crops are taken with one batched ``grid_sample`` per call (an affine grid per box), so the image is
never copied per proposal.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from mrovseg.model.clip_backbone import CLIPBackbone


def mask_boxes(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tight boxes of binary masks.

    Args:
        masks: ``(N, H, W)`` bool.

    Returns:
        boxes ``(N, 4)`` float ``(x0, y0, x1, y1)`` in pixels (``x1``, ``y1`` exclusive) and ``valid``
        ``(N,)`` bool (False for empty masks, whose box is the whole image).
    """
    _, h, w = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    valid = rows.any(dim=1)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    big = torch.tensor(10**9, device=masks.device)
    y0 = torch.where(rows, ar_h, big).amin(dim=1)
    y1 = torch.where(rows, ar_h, -1).amax(dim=1) + 1
    x0 = torch.where(cols, ar_w, big).amin(dim=1)
    x1 = torch.where(cols, ar_w, -1).amax(dim=1) + 1
    boxes = torch.stack([x0, y0, x1, y1], dim=1).float()
    full = torch.tensor([0.0, 0.0, float(w), float(h)], device=masks.device)
    return torch.where(valid[:, None], boxes, full), valid


def crop_regions(
    images: torch.Tensor,
    masks: torch.Tensor,
    image_index: torch.Tensor,
    size: int,
    interpolation: str = "bicubic",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops every mask's bounding box from its image and resizes it to ``size²`` (step 2 above).

    Args:
        images: ``(B, 3, H, W)``.
        masks: ``(N, H, W)`` bool, one per region.
        image_index: ``(N,)`` image of each region.
        size: output side (CLIP's input size).
        interpolation: ``grid_sample`` mode of the image (``bicubic`` as OVSeg, or ``bilinear``).

    Returns:
        crops ``(N, 3, size, size)`` (not blank-filled) and their masks ``(N, size, size)`` bool.
    """
    _, _, h, w = images.shape
    boxes, _ = mask_boxes(masks)
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    theta = torch.zeros(len(boxes), 2, 3, device=images.device)
    theta[:, 0, 0] = (x1 - x0) / w
    theta[:, 0, 2] = (x0 + x1) / w - 1
    theta[:, 1, 1] = (y1 - y0) / h
    theta[:, 1, 2] = (y0 + y1) / h - 1
    grid = F.affine_grid(theta, [len(boxes), 1, size, size], align_corners=False)
    src = images[image_index].float()
    crops = F.grid_sample(src, grid, mode=interpolation, padding_mode="border", align_corners=False)
    crop_masks = F.grid_sample(masks[:, None].float(), grid, mode="nearest", align_corners=False)
    return crops.clamp(0, 1) if interpolation == "bicubic" else crops, crop_masks[:, 0] > 0.5


class MaskPromptCLIP(nn.Module):
    """CLIP's image tower on blank-filled region crops, with mask prompts on blank patches.

    Args:
        backbone: the frozen CLIP (only read; its weights are not registered here).
        prompt_depth: blocks whose input gets prompts: 0 = no prompts (plain CLIP), 1 = input only,
            3 = OVSeg's default, -1 = every block.
        blank: fill value outside the mask: ``"mean"`` (CLIP's mean colour, OVSeg's default) or
            ``"zero"`` (black).
        interpolation: crop resize mode (``bicubic`` as OVSeg).
        finetune: train a copy of CLIP's image tower too (OVSeg's full fine-tuning; off by default).
        prompt_init_std: std of the prompts' normal initialisation (0.02; 0 = zeros).
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        prompt_depth: int = 3,
        blank: str = "mean",
        interpolation: str = "bicubic",
        finetune: bool = False,
        prompt_init_std: float = 0.02,
    ) -> None:
        super().__init__()
        if blank not in ("mean", "zero"):
            raise ValueError(f"blank must be 'mean' or 'zero', got {blank!r}.")
        depth = backbone.depth if prompt_depth < 0 else prompt_depth
        if not 0 <= depth <= backbone.depth:
            raise ValueError(f"prompt_depth must be in [-1, {backbone.depth}], got {prompt_depth}.")
        self.prompt_depth = depth
        self.blank = blank
        self.interpolation = interpolation
        self.size = backbone.native_grid[0] * backbone.patch_size
        self.patch_size = backbone.patch_size
        self.finetune = finetune
        num_patches = backbone.native_grid[0] * backbone.native_grid[1]
        self.prompts = nn.Parameter(torch.zeros(depth, num_patches, backbone.width))
        if prompt_init_std > 0:
            nn.init.normal_(self.prompts, std=prompt_init_std)
        # the trainable copy of the image tower (stem, blocks, head); encode() runs it instead of CLIP's
        self.visual = copy.deepcopy(backbone.visual).requires_grad_(True) if finetune else None

    @property
    def tower(self) -> nn.Module | None:
        """The image tower that encodes regions: the trainable copy (fine-tuning), or None for the frozen
        CLIP's own (:class:`~mrovseg.model.clip_backbone.CLIPBackbone` runs either)."""
        return self.visual

    def prepare(
        self,
        backbone: CLIPBackbone,
        images: torch.Tensor,
        masks: torch.Tensor,
        image_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blank-filled, CLIP-normalised crops ``(N, 3, S, S)`` and blank-patch flags ``(N, g*g)``.

        Args:
            backbone: the CLIP (normalisation and mean colour).
            images: ``(B, 3, H, W)`` in [0, 1].
            masks: ``(N, H, W)`` bool region masks.
            image_index: ``(N,)`` image of each region.
        """
        crops, crop_masks = crop_regions(images, masks, image_index, self.size, self.interpolation)
        m = crop_masks[:, None].float()
        fill = backbone.image_mean if self.blank == "mean" else torch.zeros_like(backbone.image_mean)
        crops = crops * m + fill * (1 - m)
        p = self.patch_size
        blank = F.max_pool2d(m, kernel_size=p, stride=p) == 0  # no foreground pixel in the patch
        return backbone.normalize(crops), rearrange(blank, "n 1 h w -> n (h w)")

    def patch_tokens(
        self, backbone: CLIPBackbone, crops: torch.Tensor, blank: torch.Tensor | None
    ) -> torch.Tensor:
        """Patch embeddings ``(N, g*g, D)`` with blank patches replaced by ``P[0]`` (before [CLS]/pos.)."""
        x, _ = backbone.patch_embed(crops, self.tower)
        if blank is not None and self.prompt_depth > 0:
            x = torch.where(blank[..., None], self.prompts[0].to(x.dtype), x)
        return x

    def encode(self, backbone: CLIPBackbone, crops: torch.Tensor, blank: torch.Tensor | None) -> torch.Tensor:
        """L2-normalised embeddings ``(N, E)`` of normalised crops; prompts replace blank patches.

        Stem, blocks and head are those of :attr:`tower` (the trainable copy with ``finetune``), run by
        the backbone's own methods (``stem``, ``block_forward``, ``head``).

        Args:
            backbone: the CLIP.
            crops: ``(N, 3, S, S)`` CLIP-normalised, ``S`` = CLIP's input size.
            blank: ``(N, g*g)`` bool blank-patch flags, or None for no prompts.
        """
        tower = self.tower
        x = backbone.stem(self.patch_tokens(backbone, crops, blank), backbone.native_grid, tower)
        use = blank is not None and self.prompt_depth > 0
        for i, block in enumerate(backbone.tower_blocks(tower)):
            if use and 0 < i < self.prompt_depth:
                patches = torch.where(blank[..., None], self.prompts[i].to(x.dtype), x[:, 1:])
                x = torch.cat([x[:, :1], patches], dim=1)
            x = backbone.block_forward(block, x)[0]
        return F.normalize(backbone.head(x[:, 0], tower).float(), dim=-1)

    def forward(
        self,
        backbone: CLIPBackbone,
        images: torch.Tensor,
        masks: torch.Tensor,
        image_index: torch.Tensor,
        use_prompts: bool = True,
        batch_size: int = 256,
    ) -> torch.Tensor:
        """Region embeddings ``(N, E)`` for ``N`` masks, encoded ``batch_size`` regions at a time."""
        out = []
        for s in range(0, len(masks), batch_size):
            crops, blank = self.prepare(
                backbone, images, masks[s : s + batch_size], image_index[s : s + batch_size]
            )
            out.append(self.encode(backbone, crops, blank if use_prompts else None))
        if not out:
            return images.new_zeros(0, backbone.embed_dim)
        return torch.cat(out)
