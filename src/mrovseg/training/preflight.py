"""What training checks before any work: the fast part of the dataset check (:mod:`mrovseg.data.check`)."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def check_before_training(cfg: DictConfig, datamodule: Any) -> str | None:
    """Training's hook: the fast dataset check of a datamodule that has one, before any work.

    Raises :class:`~mrovseg.data.check.DatasetCheckError` with the checker's messages. Returns the
    ``optimized_metric`` to use: when the experiment's names a benchmark the datamodule does not serve
    (e.g. ``val/toy/mIoU`` of ``experiment=toy`` with ``data=custom``), the same metric of the
    datamodule's one benchmark, so checkpoint selection and sweeps follow the user's data; otherwise
    the experiment's own (None when it sets none).
    """
    metric = cfg.get("optimized_metric")
    preflight = getattr(datamodule, "preflight", None)
    if preflight is None:
        return metric
    splits = [datamodule.train_split] if cfg.get("train", True) else []
    preflight([*splits, datamodule.eval_split])
    names = [b.name for b in datamodule.eval_benchmarks]
    parts = str(metric or "").split("/")
    if len(parts) == 3 and parts[1] not in names and len(names) == 1:
        aligned = f"{parts[0]}/{names[0]}/{parts[2]}"
        log.warning("optimized_metric %s is not served by data=%s; using %s", metric, names[0], aligned)
        return aligned
    return metric
