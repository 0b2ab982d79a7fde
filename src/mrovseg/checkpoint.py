"""Rebuilding a trained model from a checkpoint alone.

``python -m mrovseg.train`` stores the (unresolved) ``clip``, ``model``, ``criterion`` and
``module`` configs in every checkpoint, so eval, predict and the Python API can rebuild the
exact architecture from the file; CLIP weights are not in checkpoints (they come from the CLIP
config's tag or file, which may be overridden, e.g. with a local path on an offline machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import mrovseg.config  # noqa: F401  (registers the ${asset:...} resolver)

CONFIG_KEY = "mrovseg_config"
BUILD_GROUPS = ("clip", "model", "criterion", "module")


def build_config_of(cfg: DictConfig) -> dict[str, Any]:
    """The part of a composed config needed to rebuild the LightningModule (unresolved), plus the
    evaluation resize of the training data (``inference.short_side``, the default for predict)."""
    out: dict[str, Any] = {g: OmegaConf.to_container(cfg[g], resolve=False) for g in BUILD_GROUPS}
    data = cfg.get("data") or {}
    out["inference"] = {"short_side": data.get("eval_short_side") if "eval_short_side" in data else 640}
    return out


def stored_short_side(path: str | Path, default: int | None = 640) -> int | None:
    """The evaluation short side stored in a checkpoint's build config (``default`` if absent)."""
    cfg = read_checkpoint(path).get(CONFIG_KEY) or {}
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


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a checkpoint file on the CPU with a clear error for a missing or unreadable file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint not found: {path}. Pass ckpt_path=<file written by mrovseg.train>."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"Could not read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a Lightning checkpoint of mrovseg (no 'state_dict').")
    return ckpt


def load_module(
    path: str | Path, build_cfg: DictConfig | dict[str, Any] | None = None, clip_overrides: dict | None = None
) -> Any:
    """Rebuilds the LightningModule of a checkpoint and loads its weights.

    Args:
        path: checkpoint file.
        build_cfg: build config to use instead of the one stored in the checkpoint (the
            architecture must match; mismatches are reported by key).
        clip_overrides: entries merged into the CLIP config, e.g. ``{"pretrained": "/path/w.pt"}``.
    """
    from mrovseg.lit_module import check_checkpoint_compatible

    ckpt = read_checkpoint(path)
    cfg = build_cfg if build_cfg is not None else ckpt.get(CONFIG_KEY)
    if cfg is None:
        raise ValueError(f"{path} stores no model config; pass the experiment it was trained with.")
    cfg = OmegaConf.create(OmegaConf.to_container(OmegaConf.create(cfg), resolve=False))
    if clip_overrides:
        cfg.clip = OmegaConf.merge(cfg.clip, clip_overrides)
    module = build_module(cfg)
    check_checkpoint_compatible(module, ckpt, source=f"checkpoint {path}")
    state = dict(ckpt["state_dict"])
    for key, value in module.model.backbone.state_dict().items():
        state[f"model.backbone.{key}"] = value
    module.load_state_dict(state)
    module.eval()
    return module
