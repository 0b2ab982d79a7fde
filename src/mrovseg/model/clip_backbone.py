"""Frozen open_clip ViT wrapper: per-layer tokens for any view size, cached K/V, text embeddings.

MROVSeg (arXiv 2408.14776, Sec. 3.3) runs one frozen CLIP ViT over a low-resolution global view
and high-resolution slices. This module owns that CLIP:

* builds an open_clip model from a name and a ``pretrained`` tag or local file (``openai`` tags
  use the QuickGELU variant they were trained with);
* runs the vision trunk once over a batch of same-sized views with the positional embedding
  interpolated to the view's patch grid, returning the hidden states of the tapped layers and the
  keys/values of the last blocks, so that the classifier (Eq. 8) reuses CLIP's own K/V and never
  runs CLIP a second time;
* runs the classification blocks for given query tokens over given keys/values and attention
  bias (``classify``, Eq. 8), and MaskCLIP's value path of the last block (``value_path``); gives the
  pieces a training-free last block is rebuilt from (``qkv``, ``project_heads``, ``block_tail``);
* encodes a vocabulary (class names with comma-separated synonyms × prompt templates, averaged
  and L2-normalised) once per vocabulary and caches it.

The trunk is re-implemented here as a loop over open_clip's own blocks and weights (fused
``scaled_dot_product_attention``), so that keys and values can be kept; a test checks that it is
equal to open_clip's ``encode_image``. This is the only module that reaches into open_clip's
blocks (``ln_1``, ``attn``, ``ls_1``, ``mlp``, ``ln_2``, …); the classifier, the training-free
family and OVSeg's region encoder call the methods above (the latter also on its trainable copy of the
image tower: ``patch_embed``, ``stem``, ``tower_blocks`` and ``head`` take a ``tower``).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence

import open_clip
import torch
import torch.nn.functional as F
from einops import rearrange
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import nn

from mrovseg.model.clip_weights import CLIPWeightsError, build_open_clip
from mrovseg.model.view_features import ViewFeatures

__all__ = ["OPENAI_MEAN", "OPENAI_STD", "CLIPBackbone", "CLIPWeightsError", "ViewFeatures", "build_open_clip"]

log = logging.getLogger(__name__)

#: Every model holds its frozen CLIP as ``model.backbone``: the name prefix of the CLIP's parameters.
BACKBONE_PREFIX = "backbone."


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters a model trains: every parameter with a gradient outside its frozen CLIP."""
    return [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(BACKBONE_PREFIX)]


#: CLIP's pixel mean / std (open_clip's constants).
OPENAI_MEAN, OPENAI_STD = OPENAI_DATASET_MEAN, OPENAI_DATASET_STD


class CLIPBackbone(nn.Module):
    """A frozen open_clip ViT that returns per-layer tokens of views of any size and text embeddings.

    Args:
        model_name: open_clip model name (``ViT-B-16``, ``ViT-L-14``, or a custom config's stem).
        pretrained: tag, local weights file, or None for random weights (see ``build_open_clip``).
        model_config: optional custom open_clip model-config JSON (the toy CLIP).
        image_mean: normalisation mean; defaults to OpenAI CLIP's.
        image_std: normalisation std; defaults to OpenAI CLIP's.
        fused_attn: use ``F.scaled_dot_product_attention`` in the trunk.
        quick_gelu: QuickGELU activations (see ``build_open_clip``); set True for OpenAI weights
            given as a file.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-16",
        pretrained: str | None = "openai",
        model_config: str | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        fused_attn: bool = True,
        quick_gelu: bool | None = None,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.pretrained = pretrained
        clip = build_open_clip(model_name, pretrained, model_config, quick_gelu)
        clip.requires_grad_(False)
        clip.eval()
        self.clip = clip
        self.visual = clip.visual
        self.tokenizer = open_clip.get_tokenizer(model_name)
        mean = image_mean if image_mean is not None else OPENAI_MEAN
        std = image_std if image_std is not None else OPENAI_STD
        self.register_buffer(
            "image_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "image_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.fused_attn = fused_attn
        blocks = self.blocks
        for blk in blocks:
            if not isinstance(getattr(blk, "attn", None), nn.MultiheadAttention):
                raise NotImplementedError(
                    f"{model_name}: only open_clip ViTs with nn.MultiheadAttention blocks are supported."
                )
        self.width: int = self.visual.conv1.out_channels
        self.heads: int = blocks[0].attn.num_heads
        self.depth: int = len(blocks)
        self.patch_size: int = self.visual.conv1.kernel_size[0]
        self.native_grid: tuple[int, int] = tuple(self.visual.grid_size)
        self.embed_dim: int = self.visual.output_dim
        self.num_trunk_calls = 0  # counts vision-trunk passes (tests assert one per step); eager only
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self._text_cache: dict[tuple, torch.Tensor] = {}  # per vocabulary (encode_vocabulary)
        self._name_cache: dict[tuple, OrderedDict[str, torch.Tensor]] = {}  # per name (encode_names)

    # ------------------------------------------------------------------ frozen-ness
    def train(self, mode: bool = True) -> CLIPBackbone:
        """CLIP always stays in eval mode (frozen; no dropout, fixed norms)."""
        super().train(False)
        return self

    def cast_weights(self, dtype: torch.dtype) -> None:
        """Converts the CLIP's linear and convolution weights (and attention in-projections) to ``dtype``,
        in place; norms stay fp32 (bf16 inference: :mod:`mrovseg.serving.precision`)."""
        for mod in self.clip.modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                mod.to(dtype)
            elif isinstance(mod, nn.MultiheadAttention) and mod.in_proj_weight is not None:
                mod.in_proj_weight.data = mod.in_proj_weight.data.to(dtype)
                if mod.in_proj_bias is not None:
                    mod.in_proj_bias.data = mod.in_proj_bias.data.to(dtype)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.visual.transformer.resblocks

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.detach().exp()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Maps images in [0, 1] to CLIP's input normalisation."""
        return (images - self.image_mean) / self.image_std

    # ------------------------------------------------------------------ vision trunk
    def pos_embed(self, grid: tuple[int, int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Positional embedding ``(1 + gh*gw, D)`` for a patch grid, bicubically resized, [CLS] kept (cached
        per grid, device and dtype in eager mode; under ``torch.compile`` computed in the graph, no guard)."""
        if torch.compiler.is_compiling():
            return self._resized_pos(grid).to(device=device, dtype=dtype)
        key = (grid, device, dtype)
        if key not in self._pos_cache:
            self._pos_cache[key] = self._resized_pos(grid).to(device=device, dtype=dtype)
        return self._pos_cache[key]

    def _resized_pos(self, grid: tuple[int, int]) -> torch.Tensor:
        pos = self.visual.positional_embedding.detach()
        if tuple(grid) == self.native_grid:
            return pos
        gh0, gw0 = self.native_grid
        patch = rearrange(pos[1:], "(h w) d -> 1 d h w", h=gh0, w=gw0).float()
        patch = F.interpolate(patch, size=grid, mode="bicubic", align_corners=False)
        return torch.cat([pos[:1].float(), rearrange(patch, "1 d h w -> (h w) d")], dim=0)

    def embed(self, views: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patchify normalised views ``(N,3,h,w)`` → tokens ``(N, 1+L, D)`` after ``ln_pre``."""
        patches, grid = self.patch_embed(views)
        return self.stem(patches, grid), grid

    # An image tower with CLIP's structure other than the frozen one (``tower``: a trainable copy of
    # ``self.visual``, OVSeg's full fine-tuning) runs through the same methods; None = the frozen CLIP's.
    def patch_embed(
        self, views: torch.Tensor, tower: nn.Module | None = None
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """The patch embedding (``conv1``) of normalised views ``(N,3,h,w)`` → ``(N, L, D)`` and the grid."""
        tower = self.visual if tower is None else tower
        p = self.patch_size
        if views.shape[-2] % p or views.shape[-1] % p:
            raise ValueError(f"View size {tuple(views.shape[-2:])} is not a multiple of the patch size {p}.")
        x = tower.conv1(views.to(tower.conv1.weight.dtype))
        return rearrange(x, "n d h w -> n (h w) d"), (x.shape[-2], x.shape[-1])

    def stem(
        self, patches: torch.Tensor, grid: tuple[int, int], tower: nn.Module | None = None
    ) -> torch.Tensor:
        """Patch tokens ``(N, L, D)`` → ``ln_pre([CLS]; patches) + pos`` ``(N, 1+L, D)``. The frozen CLIP's
        positional embedding is resized to any grid (:meth:`pos_embed`); another tower's, trainable, is
        used as it is (its native grid only)."""
        visual = self.visual if tower is None else tower
        cls = visual.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        if tower is None:
            pos = self.pos_embed(grid, patches.device, patches.dtype)
        elif tuple(grid) == self.native_grid:
            pos = visual.positional_embedding.to(patches.dtype)
        else:
            raise ValueError(f"A copied tower runs at CLIP's native grid {self.native_grid}, not {grid}.")
        return visual.ln_pre(torch.cat([cls, patches], dim=1) + pos)

    def tower_blocks(self, tower: nn.Module | None = None) -> nn.ModuleList:
        """The residual blocks of an image tower (None: the frozen CLIP's, :attr:`blocks`)."""
        return self.blocks if tower is None else tower.transformer.resblocks

    def qkv(self, block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The block's multi-head q, k, v of ``ln_1(x)``, each ``(N, heads, T, head_dim)``."""
        attn: nn.MultiheadAttention = block.attn
        qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = rearrange(qkv, "n t (three h d) -> three n h t d", three=3, h=attn.num_heads)
        return q, k, v

    def qkv_query(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Only the multi-head queries of ``ln_1(x)`` for a block, ``(N, heads, T, head_dim)``."""
        attn: nn.MultiheadAttention = block.attn
        d = attn.embed_dim
        bias = attn.in_proj_bias[:d] if attn.in_proj_bias is not None else None
        q = F.linear(block.ln_1(x), attn.in_proj_weight[:d], bias)
        return rearrange(q, "n t (h d) -> n h t d", h=attn.num_heads)

    def attend(
        self,
        block: nn.Module,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scaled dot-product attention with the block's output projection → ``(N, Tq, D)``."""
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if bias is not None:
                logits = logits + bias
            out = logits.softmax(dim=-1) @ v
        return self.project_heads(block, out)

    def project_heads(self, block: nn.Module, heads: torch.Tensor) -> torch.Tensor:
        """Per-head outputs ``(N, heads, T, head_dim)`` through the block's out projection → ``(N, T, D)``."""
        return block.attn.out_proj(rearrange(heads, "n h t d -> n t (h d)"))

    @staticmethod
    def block_tail(
        block: nn.Module, x: torch.Tensor, attended: torch.Tensor, residual: bool = True, ffn: bool = True
    ) -> torch.Tensor:
        """The rest of a residual block after attention: ``x + ls_1(attended)`` (without ``residual``: the
        attention output alone, as the training-free last blocks use it), then ``+ ls_2(mlp(ln_2(·)))``."""
        y = x + block.ls_1(attended) if residual else attended
        return y + block.ls_2(block.mlp(block.ln_2(y))) if ffn else y

    def block_forward(
        self, block: nn.Module, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One CLIP residual block; also returns its keys and values."""
        q, k, v = self.qkv(block, x)
        return self.block_tail(block, x, self.attend(block, q, k, v)), k, v

    @torch.no_grad()
    def forward_views(self, views: torch.Tensor, tap_layers: Sequence[int], cls_layer: int) -> ViewFeatures:
        """Runs the frozen trunk once over normalised views of one size.

        Args:
            views: ``(N, 3, h, w)`` normalised images; h, w multiples of the patch size.
            tap_layers: layers whose output hidden states to keep (0 = stem, ``depth`` = last).
            cls_layer: the layer whose [CLS] starts the classifier's proposals; the blocks after it
                (0-based blocks ``cls_layer .. depth-1``) are the classification blocks, whose keys
                and values are kept. Also tapped. ``depth`` keeps no keys/values.
        """
        if not torch.compiler.is_compiling():  # a counted int would be a guard: a recompile per call
            self.num_trunk_calls += 1
        wanted = set(tap_layers) | {cls_layer}
        if max(wanted) > self.depth or min(wanted) < 0:
            raise ValueError(f"Tap layers {sorted(wanted)} out of range for a {self.depth}-layer CLIP.")
        x, grid = self.embed(views)
        layers: dict[int, torch.Tensor] = {0: x} if 0 in wanted else {}
        kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i, block in enumerate(self.blocks):
            x, k, v = self.block_forward(block, x)
            if i >= cls_layer:
                kv.append((k, v))
            if i + 1 in wanted:
                layers[i + 1] = x
        return ViewFeatures(layers=layers, kv=kv, grid=grid)

    def classify(
        self, queries: torch.Tensor, kv: Sequence[tuple[torch.Tensor, torch.Tensor]], bias: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 8: queries ``(B, N, D)`` through the last ``len(kv)`` blocks, then the head → ``(B, N, E)``.

        In each block the queries are the only query tokens; keys and values ``(B, heads, T,
        head_dim)`` are the given ones (from the trunk pass), under the additive ``bias``
        ``(B, heads, N, T)`` (−inf blocks a key); residual, LayerScale and MLP as in CLIP.
        """
        x = queries
        for block, (k, v) in zip(self.blocks[len(self.blocks) - len(kv) :], kv):
            q = self.qkv_query(block, x)
            attended = self.attend(block, q, k.to(q.dtype), v.to(q.dtype), bias.to(q.dtype))
            x = self.block_tail(block, x, attended)
        return self.head(x)

    def value_path(self, tokens: torch.Tensor, residual: bool = False) -> torch.Tensor:
        """MaskCLIP's dense path: ``out_proj(v(ln_1(x)))`` of the last block for tokens ``(N, T, D)``
        entering it; with ``residual``, the block's residual and MLP around it. → ``(N, T, D)``."""
        last = self.blocks[-1]
        _, _, v = self.qkv(last, tokens)
        return self.block_tail(last, tokens, self.project_heads(last, v), residual=residual, ffn=residual)

    def head(self, cls_tokens: torch.Tensor, tower: nn.Module | None = None) -> torch.Tensor:
        """CLIP's image head on final-layer [CLS] tokens: ``ln_post`` then ``proj`` → ``(..., E)``
        (``tower``: another image tower's head, see :meth:`patch_embed`)."""
        tower = self.visual if tower is None else tower
        x = tower.ln_post(cls_tokens)
        return x @ tower.proj if tower.proj is not None else x

    # ------------------------------------------------------------------ text side
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """open_clip's ``encode_text``, run only up to the batch's last end token (exact; see
        :func:`mrovseg.model.text_encoder.encode_text_until_end`)."""
        from mrovseg.model.text_encoder import encode_text_until_end

        return encode_text_until_end(self.clip, tokens)

    def text_fingerprint(self) -> str:
        """Identity of the text tower's weights (see :mod:`mrovseg.model.text_cache`), computed once."""
        from mrovseg.model.text_cache import text_tower_fingerprint

        if getattr(self, "_text_fingerprint", None) is None:
            self._text_fingerprint = text_tower_fingerprint(self.clip, self.model_name)
        return self._text_fingerprint

    @torch.no_grad()
    def encode_vocabulary(
        self,
        class_names: Sequence[str],
        templates: Sequence[str],
        batch_size: int = 256,
        progress: bool | None = None,
    ) -> torch.Tensor:
        """Text embeddings ``(K, E)`` of a vocabulary, L2-normalised; computed once and cached.

        Each class name may carry comma-separated synonyms (``"sofa, couch"``). Every
        (synonym, template) prompt is encoded and L2-normalised; a class's embedding is the mean over
        all its prompts, L2-normalised again.

        Prompts are encoded in batches of similar length, each cut after its longest prompt's end
        token (:meth:`encode_text`). Results are kept in memory and in the disk cache of
        :mod:`mrovseg.model.text_cache` (keyed by the text tower's weights, the templates and the names;
        ``MROVSEG_CACHE=off`` disables it), so a vocabulary is encoded once per machine.

        Args:
            class_names: The vocabulary.
            templates: Prompt templates, each with a ``{}``.
            batch_size: Prompts per text-tower pass.
            progress: Show a tqdm bar over the batches; None: only for more than 1,000 prompts.
        """
        from mrovseg.model.text_encoder import vocabulary_embeddings

        if len(class_names) == 0:
            raise ValueError("The vocabulary is empty: give at least one class name.")
        if len(templates) == 0 or any("{}" not in t for t in templates):
            raise ValueError("Prompt templates must be a non-empty list of strings with a '{}' placeholder.")
        key = (tuple(class_names), tuple(templates))
        device = self.image_mean.device
        if key not in self._text_cache:
            self._text_cache[key] = vocabulary_embeddings(
                self.encode_text, self.tokenizer, self.text_fingerprint, class_names, templates,
                batch_size, progress, device,
            )  # fmt: skip
        cached = self._text_cache[key]
        if cached.device != device:  # the model moved: keep the cache where the model is
            cached = self._text_cache[key] = cached.to(device)
        return cached

    @torch.no_grad()
    def encode_names(
        self, names: Sequence[str], templates: Sequence[str], max_cached: int = 100_000
    ) -> torch.Tensor:
        """Text embeddings ``(M, E)`` of open-ended names (caption nouns: OVSeg's mining, MGCA's training),
        by the same template-mean rule as :meth:`encode_vocabulary`, cached per name in memory (the least
        recently used dropped past ``max_cached``) and never on disk. Names not yet cached are encoded
        together, in their order of first appearance."""
        from mrovseg.model.text_encoder import vocabulary_embeddings

        device = self.image_mean.device
        if len(names) == 0:
            return torch.zeros(0, self.embed_dim, device=device)
        cache = self._name_cache.setdefault(tuple(templates), OrderedDict())
        missing = [n for n in dict.fromkeys(names) if n not in cache]
        if missing:
            feats = vocabulary_embeddings(
                self.encode_text, self.tokenizer, self.text_fingerprint, missing, templates,
                batch_size=1024, progress=False, device=device, disk=False,
            )  # fmt: skip
            cache.update(zip(missing, feats))
        for n in names:
            cache.move_to_end(n)
        while len(cache) > max_cached:
            cache.popitem(last=False)
        return torch.stack([cache[n] for n in names]).to(device)
