"""Training entry point: ``python -m mrovseg.train [experiment=<name>] [overrides]``.

Seed → instantiate data, CLIP, model, loss, LightningModule, callbacks, loggers, trainer → fit →
test the final weights → write ``metrics.json`` into the run directory → return the metric a
sweep optimises. With no arguments it runs the default CPU experiment (``experiment=toy``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

from mrovseg.config import CONF_DIR

log = logging.getLogger(__name__)


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiates the datamodule and the LightningModule (CLIP → model → loss → module)."""
    from mrovseg.training.checkpoint import build_config_of, build_module
    from mrovseg.training.preflight import check_before_training

    # plain lists, not ListConfig, in the datamodule's hparams: checkpoints must load with
    # torch.load(weights_only=True), which Lightning uses to resume (ckpt_path=last)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    metric = check_before_training(cfg, datamodule)  # data=custom: the dataset check's fast part, first
    if metric != cfg.get("optimized_metric"):
        cfg.optimized_metric = metric  # the user's data serves another benchmark than the experiment's
    module = build_module(build_config_of(cfg))
    return datamodule, module


def seed_by_name(seed: int, datamodule: L.LightningDataModule, module: L.LightningModule) -> None:
    """``seed_by_name=true``: common random numbers for settings compared on the same seeds.

    Each trainable module's initial weights come from ``(seed, its name)`` alone
    (:mod:`mrovseg.model.seeded_init`), the data order from ``seed`` alone (``data.order_seed``, unless
    set), and the global RNGs restart from ``seed`` once the model is built, so the random points of the
    loss no longer depend on how many numbers the model's construction drew."""
    redraw = getattr(module.model, "redraw_initial_weights", None)
    if redraw is None:
        raise ValueError(
            f"seed_by_name=true: {type(module.model).__name__} cannot redraw its initial weights by name "
            "(MROVSeg can); set seed_by_name=false."
        )
    redraw(seed)
    if hasattr(datamodule, "order_seed") and datamodule.order_seed is None:
        datamodule.order_seed = seed
    L.seed_everything(seed, workers=True)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Runs training (and the final evaluation) for a composed config; returns the results."""
    from mrovseg.config_checks import check_config
    from mrovseg.training.preflight import prepare_run_directory
    from mrovseg.training.trainer import make_trainer, write_metrics

    check_config(cfg)  # types and output folders, one line each, before anything is built
    prepare_run_directory(cfg)  # an earlier run's checkpoints: resume, overwrite=true or refuse
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    if cfg.get("seed_by_name"):
        seed_by_name(cfg.seed, datamodule, module)
    if cfg.trainer.get("compile"):  # mrovseg.training.speed: the trainable parts, in place
        from mrovseg.training.speed import compile_trainable

        log.info("torch.compile: %s", ", ".join(compile_trainable(module.model)))
    trainer = make_trainer(cfg)
    flat: dict[str, float] = {}  # fit's metrics (train/*, val/*) and then test's: test() resets them
    if cfg.train:
        from mrovseg.training.batching import apply_global_batch

        apply_global_batch(trainer, cfg.get("global_batch_size"), cfg.data.batch_size)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        flat.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    if cfg.test:
        trainer.test(module, datamodule=datamodule)
        flat.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    results = module.results.get("test") or module.results.get("val") or {}
    if results and not trainer.fast_dev_run:
        write_metrics(results, Path(cfg.paths.output_dir) / "metrics.json")
    return {"results": results, "callback_metrics": flat}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``optimized_metric`` for sweepers."""
    out = train(cfg)
    metric = cfg.get("optimized_metric")
    return out["callback_metrics"].get(metric) if metric else None


if __name__ == "__main__":
    main()
