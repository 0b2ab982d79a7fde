"""``checkpoints/last.ckpt`` as the latest training state, written every N steps or minutes.

Lightning's ``ModelCheckpoint(save_last=True)`` with a monitored metric rewrites ``last.ckpt`` only
when it also saves a top-k checkpoint, so after a validation that does not improve the metric
``last.ckpt`` stays at the best step, and ``ckpt_path=last`` silently restarts from there.
``LatestCheckpoint`` writes ``last.ckpt`` on its own schedule instead:

* every ``every_n_train_steps`` optimizer steps and/or every ``every_minutes`` minutes of training
  (whichever comes first; either may be null), after every validation during ``fit`` (again when the
  periodic write of that step came first: the state after validation is the one the next step
  continues from) and at the end of training, so a killed or preempted job loses at most one interval;
* atomically: the state goes to ``last.ckpt.tmp`` first and then replaces ``last.ckpt``
  (``os.replace``), so a kill during the write leaves the previous ``last.ckpt`` intact.

It is a ``ModelCheckpoint`` (``save_top_k=0``, no monitor), so Lightning's ``ckpt_path="last"``
finds the file, and the best checkpoint stays with the monitored ``ModelCheckpoint``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class LatestCheckpoint(ModelCheckpoint):
    """Keeps ``<dirpath>/last.ckpt`` the latest training state.

    Args:
        dirpath: checkpoint folder (``<run dir>/checkpoints``).
        every_n_train_steps: write every this many optimizer steps (null or 0: never by steps).
        every_minutes: write when this many minutes have passed since the last write (null: never by
            time); the decision is broadcast from rank 0, so all DDP ranks write together.

    Raises:
        ValueError: on a negative interval, or with both intervals off.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_n_train_steps: int | None = 1000,
        every_minutes: float | None = 30.0,
    ) -> None:
        steps = int(every_n_train_steps or 0)
        if steps < 0 or (every_minutes is not None and every_minutes <= 0):
            raise ValueError(
                f"LatestCheckpoint: every_n_train_steps={every_n_train_steps} and every_minutes={every_minutes} "
                "must be positive (or null to switch one off)."
            )
        if steps == 0 and every_minutes is None:
            raise ValueError("LatestCheckpoint: set every_n_train_steps or every_minutes (both are off).")
        super().__init__(
            dirpath=dirpath, monitor=None, save_top_k=0, save_last=True, enable_version_counter=False
        )
        self.every_steps = steps
        self.every_seconds = None if every_minutes is None else 60.0 * float(every_minutes)
        self._written_at = time.monotonic()

    @property
    def latest_path(self) -> str:
        """``<dirpath>/last.ckpt``."""
        assert self.dirpath is not None
        return os.path.join(self.dirpath, self.CHECKPOINT_NAME_LAST + self.FILE_EXTENSION)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._written_at = time.monotonic()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step_due = self.every_steps > 0 and trainer.global_step % self.every_steps == 0
        time_due = (
            self.every_seconds is not None and time.monotonic() - self._written_at >= self.every_seconds
        )
        time_due = bool(trainer.strategy.broadcast(time_due))
        if step_due or time_due:
            self.save_latest(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: steps and minutes decide (an epoch of the toy world is ~500 steps)."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # rewritten even when this step's periodic write came first: the state after validation (which
        # draws from the global RNG) is what the next step continues from, so a resume repeats it exactly
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self.save_latest(trainer, again=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save_latest(trainer)

    def save_latest(self, trainer: L.Trainer, again: bool = False) -> None:
        """Writes ``last.ckpt`` (via a temporary file) unless this step is already written (``again``:
        even then)."""
        path = self.latest_path
        if trainer.global_step == 0 or trainer.fast_dev_run or trainer.sanity_checking:
            return
        if not again and self._last_global_step_saved == trainer.global_step and os.path.exists(path):
            return
        tmp = path + ".tmp"
        self.last_model_path = path  # part of the saved state, set before saving
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(tmp, path)
        trainer.strategy.barrier("LatestCheckpoint.save_latest")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = path
        self._written_at = time.monotonic()
