"""Evaluation entry point: scores one checkpoint on several benchmarks in one run.

    python -m mrovseg.eval experiment=vitb16 ckpt_path=<file> eval.benchmarks=[ade150,pc59] data.root=<dir>

Writes ``metrics.json`` = ``{"<benchmark>": {"mIoU", "pixel_acc", "per_class_iou": {name: IoU},
"num_images", ...}}`` into the run directory and, with ``eval.save_predictions=true``, one label
PNG per input (uint16 when K > 255) under ``predictions/<benchmark>/<image stem>.png``.
The model is rebuilt from the config stored in the checkpoint, plus any ``clip.``/``model.``/
``module.`` overrides on the command line (experiment settings that differ are reported); weights
that do not fit are listed by key. A model with nothing to train (``model=dense_clip``) needs no
checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

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


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def _command_line_overrides() -> list[str]:
    """The ``group.key=value`` overrides given on the command line for the build groups."""
    from hydra.core.hydra_config import HydraConfig

    from mrovseg.checkpoint import BUILD_GROUPS

    if not HydraConfig.initialized():
        return []
    out = []
    for item in HydraConfig.get().overrides.task:
        key = item.split("=", 1)[0].lstrip("+~")
        if "." in key and key.split(".", 1)[0] in BUILD_GROUPS:
            out.append(item.lstrip("+~"))
    return out


def checkpoint_build_config(cfg: DictConfig, ckpt_path: str) -> dict[str, Any]:
    """The build config to evaluate a checkpoint with: the one stored in the checkpoint plus the
    ``clip.``/``model.``/``criterion.``/``module.`` overrides given on the command line.

    The experiment's config only supplies what the checkpoint does not store. Settings of the
    experiment that differ from the checkpoint's are reported (the checkpoint's are used); a
    different CLIP is an error.
    """
    from mrovseg.checkpoint import CONFIG_KEY, build_config_of, read_checkpoint

    composed = build_config_of(cfg)
    stored = read_checkpoint(ckpt_path).get(CONFIG_KEY)
    if stored is None:
        log.warning("%s stores no build config; using the composed experiment config.", ckpt_path)
        return composed
    merged = OmegaConf.merge(OmegaConf.create(stored), OmegaConf.from_dotlist(_command_line_overrides()))
    result = OmegaConf.to_container(merged, resolve=False)
    if composed["clip"].get("model_name") != result["clip"].get("model_name"):
        raise ValueError(
            f"The checkpoint {ckpt_path} was trained with CLIP {result['clip'].get('model_name')} but the config "
            f"asks for {composed['clip'].get('model_name')}. Use the experiment it was trained with."
        )
    a, b = _flatten(composed["model"]), _flatten(result["model"])
    diffs = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diffs:
        log.warning(
            "The experiment's model settings differ from the checkpoint's for %s; evaluating with the "
            "checkpoint's (override on the command line to change them).",
            ", ".join(f"model.{k} ({a.get(k)} vs {b.get(k)})" for k in diffs),
        )
    return result


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Runs the test loop over every configured benchmark and writes metrics.json."""
    from mrovseg.checkpoint import build_config_of, build_module, load_module
    from mrovseg.train import make_trainer
    from mrovseg.utils import write_metrics

    L.seed_everything(cfg.seed, workers=True)
    select_benchmarks(cfg)
    out_dir = Path(cfg.paths.output_dir)
    if cfg.get("ckpt_path"):
        module = load_module(cfg.ckpt_path, build_cfg=checkpoint_build_config(cfg, cfg.ckpt_path))
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
