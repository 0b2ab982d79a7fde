"""Evaluation entry point: scores one checkpoint on several benchmarks in one run.

    python -m mrovseg.eval experiment=vitb16 ckpt_path=<file> eval.benchmarks=[ade150,pc59] data.root=<dir>

``ckpt_path`` is a checkpoint, a Hub folder or ``hf://owner/name`` (:mod:`mrovseg.serving.hub_format`).

Writes ``metrics.json`` = ``{"<benchmark>": {"mIoU", "pixel_acc", "per_class_iou": {name: IoU},
"num_images", ...}}`` (with MESS datasets, ``eval.benchmarks=[mess]``, also ``"mess_domains"``: MESS's
per-domain means, :mod:`mrovseg.data.mess`) into the run directory and, with ``eval.save_predictions=true``,
one label PNG per input (uint16 when K > 255) under ``predictions/<benchmark>/<image stem>.png``.
The model is rebuilt from the config stored in the checkpoint, plus any ``clip.``/``model.``/
``module.`` overrides on the command line (experiment settings that differ are reported); weights
that do not fit are listed by key. A model with nothing to train (``model=dense_clip``) needs no
checkpoint. ``precision=auto|fp32|bf16`` runs the model (vision and text) in that precision
(:mod:`mrovseg.serving.precision`: bf16 sets ``trainer.precision=bf16-mixed`` and converts the frozen
CLIP's weights); the default ``null`` keeps the trainer config's precision. ``eval.analysis=true`` also
writes the error analysis ``analysis/<benchmark>/report.md`` (:mod:`mrovseg.analysis`; what
``python -m mrovseg.analyze`` runs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, open_dict

from mrovseg.config import CONF_DIR
from mrovseg.data import mess

log = logging.getLogger(__name__)


def select_benchmarks(cfg: DictConfig) -> None:
    """Applies ``eval.benchmarks`` to the data config (evaluation only, no training set); ``mess`` stands
    for every prepared MESS dataset under ``data.root``, ``paxray`` for PAXRay's four parts."""
    names = cfg.eval.get("benchmarks")
    if not names:
        return
    names = [str(n) for n in names]
    served = getattr(hydra.utils.get_class(str(cfg.data._target_)), "fixed_benchmarks", None)
    if served is not None:  # a datamodule with one world of its own (the toy world)
        if not set(names) <= set(served):
            served_text = ", ".join(repr(b) for b in served)
            raise ValueError(
                f"data={cfg.data._target_} only serves the {served_text} benchmark, not {names}."
            )
        return
    if any(n in mess.GROUPS for n in names):
        names = mess.expand_benchmarks(names, cfg.data.get("root") or "datasets")
    with open_dict(cfg):
        cfg.data.eval_benchmarks = names
        cfg.data.train_benchmark = None


def command_line_overrides() -> list[str]:
    """The overrides given on the command line (empty outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def apply_precision(cfg: DictConfig, model: Any) -> str | None:
    """Applies ``cfg.precision`` (None: the trainer's own) to the trainer config and the model; returns
    the precision used (``fp32``/``bf16``) or None."""
    from mrovseg.serving.precision import accelerator_device, prepare_model, resolve_precision

    if cfg.get("precision") is None:
        return None
    device = accelerator_device(str(cfg.trainer.get("accelerator", "cpu")))
    chosen = resolve_precision(cfg.precision, device, model=model)
    with open_dict(cfg):
        cfg.trainer.precision = "bf16-mixed" if chosen == "bf16" else "32-true"
    prepare_model(model, chosen)
    log.info("Evaluating at precision %s (trainer.precision=%s)", chosen, cfg.trainer.precision)
    return chosen


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Runs the test loop over every configured benchmark and writes metrics.json."""
    from mrovseg.analysis.run import analysis_callbacks, write_analysis
    from mrovseg.config_checks import check_config
    from mrovseg.serving.hub_format import read_model
    from mrovseg.training.callbacks.prediction_writer import PredictionWriter
    from mrovseg.training.checkpoint import (
        build_config_of,
        build_config_with_overrides,
        build_module,
        load_module,
    )
    from mrovseg.training.trainer import make_trainer, write_metrics

    check_config(cfg)  # types and output folders, one line each, before the model is loaded
    L.seed_everything(cfg.seed, workers=True)
    select_benchmarks(cfg)
    out_dir = Path(cfg.paths.output_dir)
    analysis = analysis_callbacks(cfg)  # eval.analysis=true (mrovseg.analyze): checked before any work
    if cfg.get("ckpt_path"):
        ckpt = read_model(cfg.ckpt_path)  # a .ckpt, a Hub folder or hf://owner/name
        build_cfg = build_config_with_overrides(cfg, ckpt, command_line_overrides(), source=cfg.ckpt_path)
        module = load_module(ckpt, build_cfg=build_cfg, source=cfg.ckpt_path)
    else:
        module = build_module(build_config_of(cfg))
        if module.model.trainable_parameters():
            raise ValueError(
                "ckpt_path is required: this model has trained parameters. Pass ckpt_path=<checkpoint from mrovseg.train>."
            )
    apply_precision(cfg, module.model)
    if cfg.get("compile"):
        from mrovseg.serving.compile import compile_for_inference

        compile_for_inference(module.model)
    writers = [PredictionWriter(out_dir / "predictions")] if cfg.eval.save_predictions else []
    datamodule = hydra.utils.instantiate(cfg.data)
    trainer = make_trainer(cfg, extra_callbacks=[*writers, *analysis])
    trainer.test(module, datamodule=datamodule)
    results = module.results.get("test", {})
    domains = mess.domain_means(results)  # MESS's per-domain means, when MESS datasets were scored
    write_metrics({**results, mess.METRICS_KEY: domains} if domains else results, out_dir / "metrics.json")
    mess.log_domain_means(domains)
    write_analysis(analysis, results, out_dir / "analysis", module.model, cfg.get("ckpt_path"))
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    results = evaluate(cfg)
    values = [r["mIoU"] for r in results.values() if r.get("mIoU") is not None]
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    main()
