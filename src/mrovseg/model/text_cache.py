"""A disk cache of vocabulary text embeddings, shared by predict, eval and the demo.

Encoding a large vocabulary with CLIP's text tower is the slowest part of a first answer on a CPU
(ADE-847: 847 names × the prompt templates). Its result depends only on the text tower's weights, the
tokenizer, the templates and the names, so it is stored on disk under a key made of exactly these:

* the *weights' identity*: a digest of the text tower's parameters and buffers (token and positional
  embeddings, transformer, final LayerNorm, projection) and the model name — not a file name or tag, so
  two random-weight CLIPs never share entries and a changed weights file never hits a stale entry;
* the templates and the class names, in order;
* the precision the text tower ran in (``fp32``, ``bf16``; see :mod:`mrovseg.serving.precision`), so
  float32 and bfloat16 embeddings never mix. A float32 entry's key is the one of the earlier format
  (entries written before the precision setting stay valid); other precisions add theirs to the key,
  and every entry stores its precision, checked on load.

Where: ``$MROVSEG_CACHE/text_embeddings/`` when the environment variable ``MROVSEG_CACHE`` is set, else
``~/.cache/mrovseg/text_embeddings/``; ``MROVSEG_CACHE=off`` (or ``0``, ``none``, empty) disables it.
Each entry is one small ``.pt`` file (``K × E`` float32 plus the names and templates, checked on
load), written under a temporary name and renamed. An unreadable or mismatching entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mrovseg.files import atomic_write

log = logging.getLogger(__name__)

#: Environment variable naming the cache root.
CACHE_ENV = "MROVSEG_CACHE"
_OFF = {"", "0", "off", "none", "false", "no"}
#: Bumped when the encoding itself changes (prompt composition, pooling, normalisation).
FORMAT_VERSION = 1


def cache_dir() -> Path | None:
    """The text-embedding cache folder, or None when disabled (``MROVSEG_CACHE=off``)."""
    root = os.environ.get(CACHE_ENV)
    if root is None:
        return Path("~/.cache/mrovseg").expanduser() / "text_embeddings"
    if root.strip().lower() in _OFF:
        return None
    return Path(root).expanduser() / "text_embeddings"


def text_tower_fingerprint(clip: nn.Module, model_name: str) -> str:
    """A digest of everything in an open_clip model that text embeddings depend on.

    All parameters and buffers outside the vision tower (``visual.*``) and ``logit_scale`` /
    ``logit_bias`` are hashed with their names, shapes and dtypes (about 0.3 s for ViT-B/16's
    text tower on a CPU; callers keep the result).
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{model_name}|v{FORMAT_VERSION}".encode())
    for name, tensor in sorted(clip.state_dict(keep_vars=False).items()):
        if name.startswith("visual.") or name.startswith("logit_"):
            continue
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def entry_key(
    fingerprint: str, templates: Sequence[str], class_names: Sequence[str], precision: str = "fp32"
) -> str:
    """The file stem of one vocabulary's entry at a text-tower ``precision``."""
    parts: list = [fingerprint, list(templates), list(class_names)]
    if precision != "fp32":  # fp32 keeps the key of the format without precisions
        parts.append(precision)
    payload = json.dumps(parts, ensure_ascii=False)
    return hashlib.blake2b(payload.encode(), digest_size=20).hexdigest()


def load(
    folder: Path, key: str, templates: Sequence[str], class_names: Sequence[str], precision: str = "fp32"
) -> torch.Tensor | None:
    """The cached ``(K, E)`` embeddings of a key, or None (missing, unreadable, for other names or
    another precision)."""
    path = folder / f"{key}.pt"
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if entry["names"] != list(class_names) or entry["templates"] != list(templates):
            raise ValueError("names or templates differ from the key's")
        if entry.get("precision", "fp32") != precision:
            raise ValueError(f"precision {entry.get('precision', 'fp32')}, not {precision}")
        emb = entry["embeddings"]
        if emb.shape[0] != len(class_names):
            raise ValueError(f"{emb.shape[0]} rows for {len(class_names)} names")
        return emb
    except Exception as err:  # a damaged entry is recomputed, never fatal
        log.warning("Ignoring unreadable text-embedding cache entry %s (%s); recomputing.", path, err)
        return None


def save(
    folder: Path,
    key: str,
    templates: Sequence[str],
    class_names: Sequence[str],
    emb: torch.Tensor,
    precision: str = "fp32",
) -> None:
    """Stores one entry atomically; a failure (read-only disk, ...) is logged, never raised."""
    path = folder / f"{key}.pt"
    entry = {
        "names": list(class_names),
        "templates": list(templates),
        "embeddings": emb.detach().float().cpu().contiguous(),
        "precision": precision,
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: torch.save(entry, tmp))
    except OSError as err:
        log.warning("Could not write the text-embedding cache %s: %s", path, err)
