"""Checkpoints of earlier versions in today's form: the one table of moved classes and the config upgrades.

:func:`upgrade_build_config` is applied to every stored build config on load
(:func:`mrovseg.training.checkpoint.load_module`), so a checkpoint written by any earlier version keeps
loading and predicting the same labels (``tests/test_skeleton.py``, ``tests/fixtures/checkpoints_0_1``).
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

__all__ = ["MOVED_TARGETS", "upgrade_build_config"]


#: Where the classes a checkpoint names by ``_target_`` moved (the package's layout of 0.1 → today's).
#: The one table of moved targets: a checkpoint written before a move is rewritten on load.
MOVED_TARGETS = {
    "mrovseg.lit_module.MROVSegModule": "mrovseg.training.mrovseg.MROVSegModule",
    "mrovseg.ovseg_module.OVSegModule": "mrovseg.training.ovseg.OVSegModule",
    "mrovseg.mgca_module.MGCAModule": "mrovseg.training.mgca.MGCAModule",
    "mrovseg.optim.ClosedFormPolynomialLR": "mrovseg.training.optim.ClosedFormPolynomialLR",
    "mrovseg.model.mrovseg.MROVSeg": "mrovseg.model.mrovseg.model.MROVSeg",
    "mrovseg.model.dense_clip.DenseCLIP": "mrovseg.model.training_free.dense_clip.DenseCLIP",
}


def _move_targets(node: Any) -> Any:
    """``node`` (plain containers) with every ``_target_`` of :data:`MOVED_TARGETS` rewritten, in place."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str) and target in MOVED_TARGETS:
            node["_target_"] = MOVED_TARGETS[target]
        for value in node.values():
            _move_targets(value)
    elif isinstance(node, list):
        for value in node:
            _move_targets(value)
    return node


def _drop_options_the_model_does_not_take(model_cfg: dict[str, Any]) -> None:
    """Removes, in place, options a model's class does not accept (earlier configs of the baselines carried
    MROVSeg's options, which those models swallowed): their checkpoints keep loading."""
    import inspect

    from hydra.utils import get_class

    target = model_cfg.get("_target_")
    if not isinstance(target, str):
        return
    params = inspect.signature(get_class(target)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in [k for k in model_cfg if k not in params and not k.startswith("_")]:
        log.info("Checkpoint config: %s takes no option %r; dropped.", target, key)
        del model_cfg[key]


def upgrade_build_config(build_cfg: dict[str, Any]) -> dict[str, Any]:
    """A build config of an older checkpoint in today's form (a copy; newer configs come back unchanged):

    * ``_target_``s of classes that moved (:data:`MOVED_TARGETS`) point to their new homes;
    * written before ``model.classifier.cls_key`` existed: MROVSeg gets ``true``, the keys those models
      were trained with;
    * written before the optimizer and schedule became ``_partial_`` configs (``module.lr``,
      ``weight_decay``, ``betas``, ``poly_power``, ``num_log_images``, ``prediction_dir``);
    * OVSeg written before its schedule became ``module.scheduler``: the two-stage schedule it ran with;
    * options the model's class does not take (the baselines once swallowed MROVSeg's) are dropped.
    """
    from hydra.utils import get_class

    from mrovseg.model.mrovseg import MROVSeg

    cfg = _move_targets(OmegaConf.to_container(OmegaConf.create(build_cfg), resolve=False))
    model = cfg.get("model") or {}
    target = model.get("_target_")
    if isinstance(target, str) and issubclass(get_class(target), MROVSeg):
        # Written before Algorithm 1's keys became the default: those models attended to the [CLS] key.
        classifier = model.setdefault("classifier", {}) or {}
        classifier.setdefault("cls_key", True)
        model["classifier"] = classifier
    _drop_options_the_model_does_not_take(model)
    module = cfg.get("module") or {}
    if "optimizer" not in module and {"lr", "weight_decay", "poly_power"} & set(module):
        optimizer = {"_target_": "torch.optim.AdamW", "_partial_": True}
        optimizer.update({k: module.pop(k) for k in ("lr", "weight_decay", "betas") if k in module})
        scheduler = {"_target_": "mrovseg.training.optim.ClosedFormPolynomialLR", "_partial_": True}
        scheduler["power"] = module.pop("poly_power", 0.9)
        scheduler["warmup_iters"] = 0  # those runs had no warm-up
        for key in ("num_log_images", "prediction_dir"):  # now callbacks' settings
            module.pop(key, None)
        module.update(optimizer=optimizer, scheduler=scheduler)
    scheduler = module.get("scheduler") or {}
    if (
        module.get("_target_") == "mrovseg.training.ovseg.OVSegModule"
        and scheduler.get("_target_") == MOVED_TARGETS["mrovseg.optim.ClosedFormPolynomialLR"]
    ):
        scheduler["_target_"] = "mrovseg.training.optim.two_stage_lr"
    return cfg
