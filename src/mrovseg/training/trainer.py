"""Small helpers shared by the Hydra entry points: instantiating groups, the Trainer, writing results."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mrovseg.training.metrics import SUMMARY_KEYS

log = logging.getLogger(__name__)


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiates every ``_target_`` entry of a dict-of-configs group (callbacks, loggers)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def make_trainer(cfg: DictConfig, extra_callbacks: Sequence[Any] = ()) -> Any:
    """The Lightning ``Trainer`` of a composed config: its ``callbacks`` group (without progress bars
    when ``trainer.enable_progress_bar=false``) + ``extra_callbacks``, and its ``logger`` group."""
    callbacks = [*instantiate_group(cfg.get("callbacks")), *extra_callbacks]
    if not cfg.trainer.get("enable_progress_bar", True):  # e.g. logs to a file: no bar at all
        from lightning.pytorch.callbacks import ProgressBar

        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = instantiate_group(cfg.get("logger"))
    trainer_cfg: Any = cfg.trainer
    if (
        "compile" in trainer_cfg
    ):  # ours (mrovseg.training.speed, read by mrovseg.train), not a Trainer argument
        trainer_cfg = OmegaConf.to_container(trainer_cfg, resolve=True)
        trainer_cfg.pop("compile")
    trainer = hydra.utils.instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False)
    log_config(cfg, loggers)
    return trainer


def nan_to_none(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts too) replaced by None (JSON ``null``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
    return value


def _with_interval(entry: dict[str, Any], key: str) -> str:
    """``"mIoU 55.70 [54.12, 57.31]"`` (the bootstrap interval when the entry has one)."""
    ci = entry.get(f"{key}_ci95")
    finite = ci is not None and all(v is not None and math.isfinite(v) for v in ci)
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if finite else ""
    return f"{key} {entry[key]:.2f}{interval}"


@rank_zero_only
def write_metrics(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Writes ``{"<benchmark>": {...}}`` as JSON (NaN → null) and prints one line per benchmark."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nan_to_none(results), indent=2))
    for name, entry in results.items():
        if "num_images" not in entry:  # not a benchmark: e.g. "mess_domains", logged by mrovseg.data.mess
            continue
        keys = [k for k in (*SUMMARY_KEYS, "coi_mIoU", "synonym_mIoU") if k in entry]
        summary = "  ".join(_with_interval(entry, k) for k in keys if entry[k] is not None)
        print(f"[{name}] {summary}  ({entry.get('num_images')} images)")
    print(f"metrics written to {path}")


@rank_zero_only
def log_config(cfg: DictConfig, loggers: list[Any]) -> None:
    """Sends the resolved config to every logger as hyper-parameters."""
    container = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:
        lg.log_hyperparams(container)
