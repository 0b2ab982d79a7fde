"""Lightning callbacks that act on the evaluation step's predictions (``MROVSegModule``'s
:class:`~mrovseg.training.mrovseg.EvalBatchOutput`), so the step itself only predicts and scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from mrovseg.data.image_io import save_label_png


class PredictionWriter(L.Callback):
    """Writes every test prediction as a label PNG ``<output_dir>/<benchmark>/<image name>.png``
    (uint8, or uint16 when the vocabulary has more than 255 classes)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        k = len(outputs.benchmark.class_names)
        for name, pred in zip(outputs.names, outputs.preds):
            save_label_png(self.output_dir / outputs.benchmark.name / f"{name}.png", pred.cpu().numpy(), k)
