"""The checkpoint format of mrovseg, in one place: what a checkpoint holds and how a model comes back.

``python -m mrovseg.train`` writes Lightning checkpoints with three additions:

* :data:`CONFIG_KEY` (``"mrovseg_config"``): the unresolved ``clip``, ``model``, ``criterion`` and
  ``module`` configs (:data:`BUILD_GROUPS`) plus the evaluation resize of the training data
  (``inference.short_side``), so eval, predict and the Python API rebuild the exact architecture from
  the file alone (:func:`build_config_of`, :func:`load_module`);
* :data:`CLIP_KEY` (``"mrovseg_clip"``): the CLIP's identity (model name, weight source, width, depth),
  checked on load (:func:`check_compatible`, :func:`check_clip_matches`);
* no CLIP weights: they are dropped on save (:func:`drop_clip_weights`) and put back from the CLIP
  config's tag or file on load (:func:`restore_clip_weights`; that source may be overridden, e.g. with a
  local file on an offline machine).

:func:`build_config_with_overrides` rebuilds with command-line ``clip.``/``model.``/``criterion.``/
``module.`` overrides applied on top of the stored config.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import mrovseg.config  # noqa: F401  (registers the ${asset:...} resolver)
from mrovseg.constants import DEFAULT_EVAL_SHORT_SIDE
from mrovseg.model.clip_backbone import BACKBONE_PREFIX
from mrovseg.training.checkpoint_upgrade import upgrade_build_config

log = logging.getLogger(__name__)

CONFIG_KEY = "mrovseg_config"
CLIP_KEY = "mrovseg_clip"
BUILD_GROUPS = ("clip", "model", "criterion", "module")
#: Prefix of the frozen CLIP's entries in a module's state dict (never stored in checkpoints).
CLIP_PREFIX = f"model.{BACKBONE_PREFIX}"


# ------------------------------------------------------------------------------------ build config
def _resolve_outside_references(node: Any, groups: Sequence[str] = BUILD_GROUPS) -> Any:
    """A copy of a config node (as plain containers) in which interpolations that point outside the
    build groups (``${data.crop_size}``) are replaced by their values; the others, e.g. ``${asset:...}``
    (a path in the installed package) and ``${..num_points}``, stay as written."""
    if isinstance(node, DictConfig):
        out = {}
        for key in node:
            if OmegaConf.is_interpolation(node, key):
                text = OmegaConf.to_container(node, resolve=False)[key]
                inside = text.startswith(("${asset:", "${.")) or text[2:].split(".", 1)[0] in groups
                out[key] = text if inside else node[key]
            else:
                out[key] = _resolve_outside_references(node._get_node(key), groups)
        return out
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=False)
    return node._value() if hasattr(node, "_value") else node


def build_config_of(cfg: DictConfig) -> dict[str, Any]:
    """The part of a composed config needed to rebuild the LightningModule, plus the evaluation resize
    of the training data (``inference.short_side``, the default for predict). Unresolved, except for
    references to other groups (``module.window: ${data.crop_size}``), which a checkpoint cannot follow."""
    out: dict[str, Any] = {g: _resolve_outside_references(cfg[g]) for g in BUILD_GROUPS}
    data = cfg.get("data") or {}
    short_side = data.get("eval_short_side") if "eval_short_side" in data else DEFAULT_EVAL_SHORT_SIDE
    out["inference"] = {"short_side": short_side}
    return out


def stored_short_side(
    checkpoint: str | Path | dict[str, Any], default: int | None = DEFAULT_EVAL_SHORT_SIDE
) -> int | None:
    """The evaluation short side stored in a checkpoint's build config (``default`` if absent)."""
    cfg = _as_checkpoint(checkpoint).get(CONFIG_KEY) or {}
    inference = cfg.get("inference") or {}
    return inference.get("short_side", default) if "short_side" in inference else default


def build_module(build_cfg: DictConfig | dict[str, Any]) -> Any:
    """Instantiates CLIP → model → criterion → LightningModule from a build config."""
    cfg = OmegaConf.create(build_cfg) if not isinstance(build_cfg, DictConfig) else build_cfg
    backbone = hydra.utils.instantiate(cfg.clip)
    model = hydra.utils.instantiate(cfg.model, backbone=backbone, _convert_="all")
    criterion = hydra.utils.instantiate(cfg.criterion)
    module = hydra.utils.instantiate(cfg.module, model=model, criterion=criterion, _convert_="all")
    module.build_config = OmegaConf.to_container(cfg, resolve=False)
    return module


def flatten_keys(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (the dotted keys of a nested config)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten_keys(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def apply_overrides(cfg: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``cfg`` with the ``group.key=value`` overrides (Hydra syntax) of the :data:`BUILD_GROUPS` applied.

    Overrides are parsed by Hydra's own parser (``key=value``, ``+key=value``, ``++key=value``,
    ``~key``); those of other groups and group choices (``clip=vitb16``) are skipped.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    merged = OmegaConf.create(cfg)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if "." not in key or key.split(".", 1)[0] not in BUILD_GROUPS:
            continue
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(merged, parent)
            if node is not None and leaf in node:
                del node[leaf]
        else:
            OmegaConf.update(merged, key, override.value(), merge=True, force_add=True)
    return OmegaConf.to_container(merged, resolve=False)


def build_config_with_overrides(
    cfg: DictConfig,
    ckpt_path: str | Path | dict[str, Any],
    overrides: Sequence[str],
    source: str | Path | None = None,
) -> dict:
    """The build config to evaluate a checkpoint with: the one stored in the checkpoint plus the
    ``clip.``/``model.``/``criterion.``/``module.`` ``overrides`` (the command line's).
    ``ckpt_path`` may be the checkpoint's contents already read (a Hub folder's too), named ``source``.

    The composed experiment ``cfg`` only supplies what the checkpoint does not store. Settings of the
    experiment that differ from the checkpoint's are reported (the checkpoint's are used).

    Raises:
        ValueError: The experiment asks for another CLIP than the checkpoint's.
    """
    composed = build_config_of(cfg)
    stored = _as_checkpoint(ckpt_path).get(CONFIG_KEY)
    ckpt_path = source if source is not None else ckpt_path  # its name in the messages
    if stored is None:
        log.warning("%s stores no build config; using the composed experiment config.", ckpt_path)
        return composed
    result = apply_overrides(upgrade_build_config(stored), overrides)
    if composed["clip"].get("model_name") != result["clip"].get("model_name"):
        raise ValueError(
            f"The checkpoint {ckpt_path} was trained with CLIP {result['clip'].get('model_name')} but the config "
            f"asks for {composed['clip'].get('model_name')}. Use the experiment it was trained with."
        )
    experiment, checkpoint = flatten_keys(composed["model"]), flatten_keys(result["model"])
    diffs = sorted(k for k in set(experiment) | set(checkpoint) if experiment.get(k) != checkpoint.get(k))
    if diffs:
        log.warning(
            "The experiment's model settings differ from the checkpoint's for %s; evaluating with the "
            "checkpoint's (override on the command line to change them).",
            ", ".join(f"model.{k} ({experiment.get(k)} vs {checkpoint.get(k)})" for k in diffs),
        )
    return result


# ------------------------------------------------------------------------------------ CLIP
def clip_identity(backbone: Any) -> dict[str, Any]:
    """What a checkpoint records of its CLIP: model name, weight source, width and depth."""
    return {
        "model_name": backbone.model_name,
        "pretrained": str(backbone.pretrained),
        "width": backbone.width,
        "depth": backbone.depth,
    }


def drop_clip_weights(checkpoint: dict[str, Any], module: Any) -> None:
    """Removes the frozen CLIP from a checkpoint being saved and records its identity and build config."""
    for state in _model_states(checkpoint):
        for key in [k for k in state if k.startswith(CLIP_PREFIX)]:
            del state[key]
    checkpoint[CLIP_KEY] = clip_identity(module.model.backbone)
    if getattr(module, "build_config", None) is not None:
        checkpoint[CONFIG_KEY] = module.build_config


def _model_states(checkpoint: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """The state dicts of a checkpoint that hold the module's weights: ``state_dict`` and, with an EMA of
    the weights (Lightning's ``WeightAveraging`` callbacks), ``current_model_state`` (the raw weights;
    ``state_dict`` then holds their average, the weights evaluated and served)."""
    return [
        checkpoint[k] for k in ("state_dict", "current_model_state") if isinstance(checkpoint.get(k), dict)
    ]


def restore_clip_weights_of(checkpoint: dict[str, Any], module: Any) -> None:
    """:func:`restore_clip_weights` into every model state of a checkpoint being loaded (resume)."""
    for state in _model_states(checkpoint):
        restore_clip_weights(state, module)


def restore_clip_weights(state: dict[str, torch.Tensor], module: Any) -> dict[str, torch.Tensor]:
    """Puts the module's (config-loaded) CLIP weights into a checkpoint's state dict, in place."""
    for key, value in module.model.backbone.state_dict().items():
        state[f"{CLIP_PREFIX}{key}"] = value
    return state


def check_clip_matches(
    checkpoint: str | Path | dict[str, Any], model_name: str, source: str | Path | None = None
) -> None:
    """Raises a clear error when the checkpoint's CLIP is not ``model_name`` (before building anything).

    Args:
        checkpoint: A checkpoint file or its contents (:func:`read_checkpoint`).
        model_name: The CLIP requested.
        source: The file's name for messages when ``checkpoint`` is its contents.

    Raises:
        FileNotFoundError: The checkpoint does not exist.
        ValueError: The checkpoint was trained with another CLIP.
    """
    ckpt = _as_checkpoint(checkpoint)
    path = source if source is not None else checkpoint
    stored = (ckpt.get(CLIP_KEY) or {}).get("model_name")
    if stored is None:
        stored = ((ckpt.get(CONFIG_KEY) or {}).get("clip") or {}).get("model_name")
    if stored is not None and stored != model_name:
        raise ValueError(
            f"The checkpoint {path} was trained with CLIP {stored}, but CLIP {model_name} was requested "
            f"(clip=... override). Leave out the clip group to use the checkpoint's CLIP; to load its "
            f"weights from a file pass clip.pretrained=/path/to/weights."
        )


def check_compatible(module: Any, checkpoint: dict[str, Any], source: str = "checkpoint") -> None:
    """Raises a clear error if a checkpoint's CLIP or architecture differs from ``module``'s."""
    clip = checkpoint.get(CLIP_KEY)
    mine = clip_identity(module.model.backbone)
    fields = ("model_name", "width", "depth")
    if clip is not None and tuple(clip[f] for f in fields) != tuple(mine[f] for f in fields):
        raise ValueError(
            f"The {source} was trained with CLIP {clip['model_name']} (width {clip['width']}, depth {clip['depth']}) "
            f"but the config builds {mine['model_name']} (width {mine['width']}, depth {mine['depth']}). "
            "Use the same experiment/clip config as for training."
        )
    expected = {k: v.shape for k, v in module.state_dict().items() if not k.startswith(CLIP_PREFIX)}
    got = {k: v.shape for k, v in checkpoint["state_dict"].items() if not k.startswith(CLIP_PREFIX)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    if missing or unexpected or mismatched:
        lines = [f"The {source} does not match the configured architecture:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}")
        for k in mismatched[:20]:
            lines.append(f"  shape mismatch {k}: checkpoint {tuple(got[k])} vs model {tuple(expected[k])}")
        lines.append("Use the experiment/model config the checkpoint was trained with.")
        raise ValueError("\n".join(lines))


# ------------------------------------------------------------------------------------ files
class UnsafeCheckpointError(ValueError):
    """A checkpoint holds Python objects other than tensors and plain data: loading it could run code."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a checkpoint file on the CPU with a clear error for a missing or unreadable file.

    Read with ``torch.load(weights_only=True)``: tensors and plain data only (what ``mrovseg.train``
    writes), so a file cannot run code on load. Anything else is refused (:class:`UnsafeCheckpointError`,
    whose message names the object and the one-off conversion of the file:
    ``python -m mrovseg.training.checkpoint_convert IN OUT``).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint not found: {path}. Pass ckpt_path=<file written by mrovseg.train>."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found is None:
            raise ValueError(
                f"Could not read checkpoint {path}: damaged, or not written by torch.save."
            ) from None
        raise UnsafeCheckpointError(
            f"Refused to load checkpoint {path}: besides tensors and plain data (all that checkpoints of "
            f"mrovseg.train hold) it holds the Python object '{found.group(1)}', and loading it could run code "
            "hidden in the file. To keep its weights, convert it once: python -m "
            f"mrovseg.training.checkpoint_convert {path} <new.ckpt> (runs none of the file's code and writes a "
            "copy of its tensors and plain data), then pass ckpt_path=<new.ckpt>."
        ) from None
    except Exception as err:
        raise ValueError(f"Could not read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a Lightning checkpoint of mrovseg (no 'state_dict').")
    return ckpt


def _as_checkpoint(checkpoint: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's contents: read from the file, or ``checkpoint`` itself when already read."""
    return checkpoint if isinstance(checkpoint, dict) else read_checkpoint(checkpoint)


def load_module(
    checkpoint: str | Path | dict[str, Any],
    build_cfg: DictConfig | dict[str, Any] | None = None,
    clip_overrides: dict | None = None,
    source: str | Path | None = None,
) -> Any:
    """Rebuilds the LightningModule of a checkpoint and loads its weights.

    Args:
        checkpoint: checkpoint file, or its contents already read (:func:`read_checkpoint`).
        source: the file's name for messages when ``checkpoint`` is its contents.
        build_cfg: build config to use instead of the one stored in the checkpoint (the
            architecture must match; mismatches are reported by key).
        clip_overrides: entries merged into the CLIP config, e.g. ``{"pretrained": "/path/w.pt"}``.
    """
    ckpt = _as_checkpoint(checkpoint)
    path = source if source is not None else checkpoint if not isinstance(checkpoint, dict) else "checkpoint"
    cfg = build_cfg if build_cfg is not None else ckpt.get(CONFIG_KEY)
    if cfg is None:
        raise ValueError(f"{path} stores no model config; pass the experiment it was trained with.")
    cfg = OmegaConf.create(upgrade_build_config(cfg))
    if clip_overrides:
        cfg.clip = OmegaConf.merge(cfg.clip, clip_overrides)
    module = build_module(cfg)
    check_compatible(module, ckpt, source=f"checkpoint {path}")
    module.load_state_dict(restore_clip_weights(dict(ckpt["state_dict"]), module))
    module.eval()
    return module


def clip_overrides_of(cfg: DictConfig) -> dict[str, Any]:
    """The ``clip`` entries given on the command line or by a ``clip=<name>`` group (unresolved)."""
    clip = cfg.get("clip")
    if not clip:
        return {}
    return {
        k: v
        for k, v in OmegaConf.to_container(clip, resolve=False).items()
        if not OmegaConf.is_missing(clip, k)
    }
