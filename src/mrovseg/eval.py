"""Evaluation entry point: scores one checkpoint on several benchmarks in one run.

    python -m mrovseg.eval experiment=vitb16 ckpt_path=<file> eval.benchmarks=[ade150,pc59] data.root=<dir>

Writes ``metrics.json`` = ``{"<benchmark>": {"mIoU", "pixel_acc", "per_class_iou": {name: IoU},
"num_images", ...}}`` into the run directory and, with ``eval.save_predictions=true``, one label
PNG per input (uint16 when K > 255) under ``predictions/<benchmark>/<image stem>.png``.
The architecture is the composed config's; the checkpoint must match it (mismatched keys are
listed). A model with nothing to train (``model=dense_clip``) needs no checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, open_dict

from mrovseg.config import CONF_DIR

log = logging.getLogger(__name__)


def select_benchmarks(cfg: DictConfig) -> None:
    """Applies ``eval.benchmarks`` to the data config (evaluation only, no training set)."""
    names = cfg.eval.get("benchmarks")
    if not names:
        return
    names = [str(n) for n in names]
    target = str(cfg.data.get("_target_", ""))
    with open_dict(cfg):
        if target.endswith("ToyDataModule"):
            if names != ["toy"]:
                raise ValueError(f"The toy datamodule only serves the 'toy' benchmark, not {names}.")
            return
        cfg.data.eval_benchmarks = names
        cfg.data.train_benchmark = None


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Runs the test loop over every configured benchmark and writes metrics.json."""
    from mrovseg.checkpoint import build_config_of, build_module, load_module
    from mrovseg.train import make_trainer
    from mrovseg.utils import write_metrics

    L.seed_everything(cfg.seed, workers=True)
    select_benchmarks(cfg)
    out_dir = Path(cfg.paths.output_dir)
    if cfg.get("ckpt_path"):
        module = load_module(cfg.ckpt_path, build_cfg=build_config_of(cfg))
    else:
        module = build_module(build_config_of(cfg))
        if module.model.trainable_parameters():
            raise ValueError(
                "ckpt_path is required: this model has trained parameters. Pass ckpt_path=<checkpoint from mrovseg.train>."
            )
    if cfg.eval.save_predictions:
        module.hparams.prediction_dir = str(out_dir / "predictions")
    datamodule = hydra.utils.instantiate(cfg.data)
    trainer = make_trainer(cfg)
    trainer.test(module, datamodule=datamodule)
    results = module.results.get("test", {})
    write_metrics(results, out_dir / "metrics.json")
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    results = evaluate(cfg)
    values = [r["mIoU"] for r in results.values() if r.get("mIoU") is not None]
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    main()
