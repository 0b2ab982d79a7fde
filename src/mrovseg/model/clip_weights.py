"""From a model name and a tag or a local file to an open_clip model: the weight resolver.

``build_open_clip`` accepts an open_clip tag (``openai``; open_clip downloads and caches it where a
network exists), a local weights file (``.pt``, ``.safetensors``, ...), or ``None`` (random weights), and
an optional JSON model config for shapes open_clip does not know (the shipped toy CLIP). Without a
network and without a file, :class:`CLIPWeightsError` says so and how to pass a path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import open_clip
from torch import nn

log = logging.getLogger(__name__)

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class CLIPWeightsError(RuntimeError):
    """CLIP weights could not be found or loaded."""


def _is_path_like(value: str) -> bool:
    return os.sep in value or value.startswith(".") or value.endswith(_WEIGHT_SUFFIXES)


def _register_config(model_config: str | Path) -> str:
    path = Path(model_config)
    if not path.is_file():
        raise FileNotFoundError(
            f"open_clip model config not found: {path}. Expected a JSON file with "
            "'embed_dim', 'vision_cfg' and 'text_cfg' (open_clip's model-config format)."
        )
    open_clip.add_model_config(str(path))
    if open_clip.get_model_config(path.stem) is None:
        raise ValueError(
            f"{path} is not a valid open_clip model config (needs embed_dim, vision_cfg, text_cfg)."
        )
    return path.stem


def build_open_clip(
    model_name: str,
    pretrained: str | None,
    model_config: str | Path | None = None,
    quick_gelu: bool | None = None,
) -> nn.Module:
    """Creates an open_clip model from a name and a tag, a local weights file, or nothing (random).

    Args:
        model_name: open_clip model name, e.g. ``ViT-B-16``; with ``model_config`` it must be the
            config file's stem.
        pretrained: an open_clip pretrained tag (``openai``, ``laion2b_s34b_b88k``, ...), a path to
            a state dict (``.pt``/``.pth``/``.bin``/``.safetensors``) saved from an open_clip model,
            or None/``"none"`` for random weights (tests and FLOP counting).
        model_config: optional path of a custom open_clip model-config JSON to register first.
        quick_gelu: use QuickGELU activations (OpenAI CLIP was trained with them). None: only for
            the ``openai`` tag. A weights *file* cannot tell, so OpenAI weights loaded from a file
            need ``quick_gelu=True`` (or a ``*-quickgelu`` model name), else the features are wrong.

    Raises:
        FileNotFoundError: ``pretrained`` looks like a path that does not exist.
        CLIPWeightsError: a tag is unknown or its weights cannot be downloaded (no network).
    """
    if model_config is not None:
        registered = _register_config(model_config)
        if registered != model_name:
            raise ValueError(f"model_name {model_name!r} differs from the config file's stem {registered!r}.")
    if model_name.replace("/", "-") not in open_clip.list_models():
        raise ValueError(
            f"Unknown open_clip model {model_name!r}. Known: {', '.join(open_clip.list_models()[:20])}, ..."
        )
    if pretrained is None or str(pretrained).lower() in ("", "none", "random"):
        return open_clip.create_model(model_name, pretrained=None, force_quick_gelu=bool(quick_gelu))
    pretrained = str(pretrained)
    if _is_path_like(pretrained) or Path(pretrained).exists():
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"CLIP weights file not found: {path}. Pass an existing state dict saved from an open_clip "
                f"'{model_name}' model, e.g. clip.pretrained=/path/to/weights.safetensors."
            )
        return open_clip.create_model(model_name, pretrained=str(path), force_quick_gelu=bool(quick_gelu))
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise CLIPWeightsError(
            f"{pretrained!r} is neither a file nor a known open_clip tag for {model_name} (tags: {tags})."
        )
    if quick_gelu is None:
        quick_gelu = pretrained == "openai" and "quickgelu" not in model_name.lower()
    try:
        return open_clip.create_model(model_name, pretrained=pretrained, force_quick_gelu=quick_gelu)
    except Exception as err:  # download failures surface as many exception types
        raise CLIPWeightsError(
            f"Could not load the '{pretrained}' weights of {model_name}: {err}\n"
            "They are downloaded by open_clip on first use, which needs a network (none here?). Either run once "
            f"where a network exists: python -c \"import open_clip; open_clip.create_model('{model_name}', "
            f"pretrained='{pretrained}')\" (cached under ~/.cache/huggingface), or save the weights and pass "
            "clip.pretrained=/path/to/weights.safetensors (see README, 'CLIP weights offline')."
        ) from err
