"""Callbacks for the kill-and-resume tests (imported by ``python -m mrovseg.train`` children)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L


class StallAtStep(L.Callback):
    """After optimizer step ``step``, writes ``marker`` and sleeps (the test then SIGKILLs the process)."""

    def __init__(self, step: int, marker: str, seconds: float = 600.0) -> None:
        self.step, self.marker, self.seconds = step, Path(marker), seconds

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            self.marker.write_text(str(trainer.global_step))
            time.sleep(self.seconds)


class RecordSchedule(L.Callback):
    """Appends JSON lines to ``path``: the state at train start, then the LR after every step."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _write(self, entry: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scheduler = trainer.lr_scheduler_configs[0].scheduler
        self._write({"start": trainer.global_step, "last_epoch": scheduler.last_epoch})

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        self._write({"step": trainer.global_step, "lr": lr})


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a ``RecordSchedule`` file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
