"""Small helpers for the Hydra entry points: instantiation of groups and writing results."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import hydra
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiates every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


@rank_zero_only
def write_metrics(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Writes ``{"<benchmark>": {...}}`` as JSON (NaN → null) and prints one line per benchmark."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(results), indent=2))
    for name, entry in results.items():
        keys = [
            k for k in ("mIoU", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU", "pixel_acc") if k in entry
        ]
        summary = "  ".join(f"{k} {entry[k]:.2f}" for k in keys if entry[k] is not None)
        print(f"[{name}] {summary}  ({entry.get('num_images')} images)")
    print(f"metrics written to {path}")


@rank_zero_only
def log_config(cfg: DictConfig, loggers: list[Any]) -> None:
    """Sends the resolved config to every logger as hyper-parameters."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:
        lg.log_hyperparams(container)
