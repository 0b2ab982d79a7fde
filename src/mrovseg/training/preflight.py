"""What training checks before any work: the run directory (:func:`prepare_run_directory`) and the
fast part of the dataset check (:mod:`mrovseg.data.check`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


class RunDirectoryError(FileExistsError):
    """The run directory holds an earlier run's checkpoints and this run neither resumes nor overwrites."""


def checkpoint_folders(cfg: DictConfig) -> list[Path]:
    """``<run dir>/checkpoints`` and the ``dirpath`` of every configured callback that has one."""
    folders = [Path(cfg.paths.output_dir) / "checkpoints"]
    for callback in (cfg.get("callbacks") or {}).values():
        if isinstance(callback, DictConfig) and callback.get("dirpath"):
            folders.append(Path(str(callback.dirpath)))
    return list(dict.fromkeys(folders))


def prepare_run_directory(cfg: DictConfig) -> None:
    """Refuses a run directory that holds an earlier run's checkpoints, unless this run resumes it
    (``ckpt_path=last``, a checkpoint inside it, or Lightning's SLURM requeue: ``hpc_ckpt_<n>.ckpt``
    there and ``ckpt_path`` unset) or ``overwrite=true`` (then those checkpoints are deleted first).
    An earlier ``metrics.json`` is deleted in every case, so it never lies beside this run's
    checkpoints (this run writes its own at the end). Nothing to do without training, in a
    ``fast_dev_run`` (it writes nothing) and on processes other than rank 0.

    Raises:
        RunDirectoryError: The directory holds checkpoints; the message says how to go on.
    """
    from lightning.pytorch.utilities import rank_zero_only

    if not cfg.get("train", True) or cfg.trainer.get("fast_dev_run") or rank_zero_only.rank != 0:
        return
    out = Path(cfg.paths.output_dir)
    folders = checkpoint_folders(cfg)
    hpc = sorted(Path(str(cfg.trainer.get("default_root_dir") or out)).glob("hpc_ckpt_*.ckpt"))
    found = sorted(p for folder in folders for p in folder.glob("*.ckpt") if p.is_file()) + hpc
    if found:
        ckpt = cfg.get("ckpt_path")
        inside = bool(ckpt) and Path(str(ckpt)).expanduser().resolve().is_relative_to(out.resolve())
        resuming = ckpt in ("last", "hpc") or inside or (ckpt is None and bool(hpc))
        names = ", ".join(str(p.relative_to(out)) if p.is_relative_to(out) else str(p) for p in found)
        if cfg.get("overwrite") and ckpt is not None and resuming:
            raise RunDirectoryError(
                f"overwrite=true would delete the checkpoints of {out} that ckpt_path={ckpt} resumes from: "
                "pass one of the two."
            )
        if cfg.get("overwrite"):
            for path in [*found, *(p for folder in folders for p in folder.glob("*.ckpt.tmp"))]:
                path.unlink()
            log.warning("overwrite=true: deleted the earlier run's checkpoints in %s (%s)", out, names)
        elif not resuming:
            raise RunDirectoryError(
                f"{out} already holds the checkpoints of an earlier run ({names}). To continue that run "
                "pass ckpt_path=last (or a checkpoint inside it); to start over in it pass overwrite=true "
                "(deletes those checkpoints and its metrics.json); or give another hydra.run.dir."
            )
    metrics = out / "metrics.json"
    if metrics.is_file():
        metrics.unlink()
        log.warning("deleted %s of the earlier run: this run writes its own when it ends", metrics)


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
