"""CLIP's text tower, run only as far as the prompts need it.

CLIP's text transformer is causal: the token at position ``i`` attends to positions ``<= i`` only, and a
prompt's embedding is read at its end token. Positions after a batch's last end token therefore never
influence any embedding of the batch, so the batch can be cut there: a 77-token context holding
11-token prompts costs about 7× less, with the same result up to float rounding (tested against
open_clip's ``encode_text``). Prompts are batched by length so that each batch is cut as early as
possible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mrovseg.model.class_names import split_synonyms


def _is_causal(mask: torch.Tensor) -> bool:
    above = torch.triu(torch.ones_like(mask, dtype=torch.bool), diagonal=1)
    return bool(torch.isinf(mask[above]).all() and (mask[~above] == 0).all())


@torch.no_grad()
def encode_text_until_end(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``CLIP.encode_text(tokens)`` (unnormalised), computed on the first ``n`` positions only,
    ``n`` = the batch's last end-token position + 1.

    Models without a causal mask or without end-token pooling (``argmax``/``eos``) fall back to
    ``clip.encode_text``.
    """
    mask = getattr(clip, "attn_mask", None)
    pool = getattr(clip, "text_pool_type", None)
    if (
        not hasattr(clip, "token_embedding")
        or mask is None
        or pool not in ("argmax", "eos")
        or not _is_causal(mask)
    ):
        return clip.encode_text(tokens)
    ends = tokens.argmax(dim=-1) if pool == "argmax" else (tokens == clip.text_eos_id).int().argmax(dim=-1)
    n = int(ends.max()) + 1
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens[:, :n]).to(cast_dtype) + clip.positional_embedding[:n].to(cast_dtype)
    x = clip.ln_final(clip.transformer(x, attn_mask=mask[:n, :n]))
    x = x[torch.arange(x.shape[0], device=x.device), ends]
    proj = clip.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def vocabulary_prompts(class_names: Sequence[str], templates: Sequence[str]) -> tuple[list[str], list[int]]:
    """Every (synonym, template) prompt of a vocabulary and the index of the class it belongs to.

    Raises:
        ValueError: A class name holds no synonym (empty, or commas only).
    """
    prompts: list[str] = []
    owner: list[int] = []
    for idx, name in enumerate(class_names):
        synonyms = split_synonyms(name)
        if not synonyms:
            raise ValueError(f"Class {idx} has an empty name: {name!r}.")
        for syn in synonyms:
            prompts += [template.format(syn) for template in templates]
            owner += [idx] * len(templates)
    return prompts, owner


def encode_prompts(
    encode: Callable[[torch.Tensor], torch.Tensor],
    tokenizer: Callable[[Sequence[str]], torch.Tensor],
    prompts: Sequence[str],
    batch_size: int = 256,
    progress: bool | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """L2-normalised embeddings ``(P, E)`` of prompts, in their order.

    Args:
        encode: tokens ``(B, L)`` → embeddings ``(B, E)`` (e.g. :func:`encode_text_until_end`).
        tokenizer: prompts → tokens ``(P, L)`` (padding 0).
        prompts: The prompts.
        batch_size: Prompts per pass; prompts of similar length share a pass.
        progress: A tqdm bar over the passes; None: only for more than 1,000 prompts.
        device: Where the tokens go and the result is.
    """
    from tqdm.auto import tqdm

    tokens = tokenizer(list(prompts))
    order = torch.argsort((tokens != 0).sum(dim=-1), stable=True)
    batches = [order[i : i + batch_size] for i in range(0, len(prompts), batch_size)]
    show = len(prompts) > 1000 if progress is None else progress
    feats: torch.Tensor | None = None
    for idx in tqdm(batches, desc="encoding vocabulary", unit="batch", disable=not show, leave=False):
        out = F.normalize(encode(tokens[idx].to(device)).float(), dim=-1)
        if feats is None:
            feats = torch.empty(len(prompts), out.shape[-1], device=device)
        feats[idx.to(device)] = out
    if feats is None:
        raise ValueError("No prompts to encode.")
    return feats


def autocast_precision(device: torch.device | str = "cpu") -> str:
    """The precision the text tower runs in on ``device`` here: ``fp32``, or ``bf16``/``fp16`` under
    ``torch.autocast`` (how predict, eval and the demo run it at ``precision=bf16``)."""
    device_type = torch.device(device).type
    if not torch.is_autocast_enabled(device_type):
        return "fp32"
    dtype = torch.get_autocast_dtype(device_type)
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype).replace("torch.", ""))


def vocabulary_embeddings(
    encode: Callable[[torch.Tensor], torch.Tensor],
    tokenizer: Callable[[Sequence[str]], torch.Tensor],
    fingerprint: Callable[[], str],
    class_names: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
    progress: bool | None = None,
    device: torch.device | str = "cpu",
    disk: bool = True,
    precision: str | None = None,
) -> torch.Tensor:
    """Class embeddings ``(K, E)`` in float32: the L2-normalised mean of each class's L2-normalised prompt
    embeddings (every synonym × template, :func:`prompt_mean`), read from / written to the disk cache of
    :mod:`mrovseg.model.text_cache` when it is on and ``disk`` (keyed by ``fingerprint()``, the
    templates, the names and the text tower's ``precision``; None: :func:`autocast_precision`).
    """
    from mrovseg.model import text_cache

    precision = autocast_precision(device) if precision is None else precision
    folder = text_cache.cache_dir() if disk else None
    disk_key = text_cache.entry_key(fingerprint(), templates, class_names, precision) if folder else ""
    stored = text_cache.load(folder, disk_key, templates, class_names, precision) if folder else None
    if stored is not None:
        return stored.to(device)
    prompts, owner = vocabulary_prompts(class_names, templates)
    feats = encode_prompts(encode, tokenizer, prompts, batch_size, progress, device)
    embeddings = prompt_mean(feats, owner, len(class_names))
    if folder:
        text_cache.save(folder, disk_key, templates, class_names, embeddings, precision)
    return embeddings


def prompt_mean(feats: torch.Tensor, owner: Sequence[int], num_classes: int) -> torch.Tensor:
    """The package's one template-mean rule: a class's embedding is the L2-normalised mean of its
    L2-normalised prompt embeddings ``feats`` (``owner[i]``: the class of prompt ``i``)."""
    owner_t = torch.tensor(list(owner), device=feats.device)
    summed = torch.zeros(num_classes, feats.shape[-1], device=feats.device).index_add_(0, owner_t, feats)
    counts = torch.bincount(owner_t, minlength=num_classes).clamp_min(1).to(feats.dtype)
    return F.normalize(summed / counts[:, None], dim=-1)
