"""Training-free models without a checkpoint: :meth:`Segmenter.from_config`, and ``predict`` / the demo with
``model=<name>`` and no ``ckpt_path``.

A checkpoint of ``mrovseg.train`` stores a build config (``clip``, ``model``, ``criterion``, ``module`` and
the evaluation resize, :func:`mrovseg.training.checkpoint.build_config_of`) next to its trained weights. A
training-free model (dense CLIP, SCLIP, ClearCLIP, NACLIP) has no weights of its own, so the same build
config composed from ``conf/`` rebuilds it whole: the eval config with ``experiment=<name>`` — the method
*and* its protocol (window, stride, prompt templates, short side) — plus any overrides. The resulting
:class:`~mrovseg.serving.segmenter.Segmenter` is the one a checkpoint gives: same windows, same outputs,
the same numbers as ``python -m mrovseg.eval experiment=<name>``.

``predict`` and the demo pick the experiment from ``model=<name>``: ``<name>_vitb16`` (OpenAI CLIP ViT-B/16,
real photos), or ``<name>_toy`` with ``clip=toy``; another ``clip=`` group (``vitl14``) replaces ViT-B/16
in ``<name>_vitb16``, and ``clip.pretrained=<file>`` reads the weights from a file (offline machines).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mrovseg.config import CONF_DIR

log = logging.getLogger(__name__)

#: The experiment suffix of each kind of CLIP: the shipped toy CLIP and the real ones.
TOY, REAL = "toy", "vitb16"


def training_free_models() -> list[str]:
    """The models that run without a checkpoint: each ``conf/model/<name>.yaml`` of the training-free family
    (:class:`~mrovseg.model.training_free.last_block.LastBlockCLIP`)."""
    from hydra.utils import get_class

    from mrovseg.model.training_free.last_block import LastBlockCLIP

    return [
        p.stem
        for p in sorted((CONF_DIR / "model").glob("*.yaml"))
        if issubclass(get_class(str(OmegaConf.load(p)._target_)), LastBlockCLIP)
    ]


def model_name_of(model_cfg: Mapping[str, Any]) -> str | None:
    """The ``conf/model/<name>.yaml`` whose ``_target_`` is the given model config's, or None."""
    target = model_cfg.get("_target_")
    for path in sorted((CONF_DIR / "model").glob("*.yaml")):
        if OmegaConf.load(path).get("_target_") == target:
            return path.stem
    return None


def experiment_for(model_cfg: Mapping[str, Any], clip_cfg: Mapping[str, Any] | None = None) -> str:
    """The experiment a ``model=<name>`` choice runs with: ``<name>_toy`` for the toy CLIP, else
    ``<name>_vitb16``.

    Raises:
        ValueError: The model has trained parameters (it needs ``ckpt_path``) or is not a known one.
    """
    toy = OmegaConf.load(CONF_DIR / "clip" / f"{TOY}.yaml").get("model_name")
    kind = TOY if (clip_cfg or {}).get("model_name") == toy else REAL
    name = model_name_of(model_cfg)
    if name not in training_free_models() or not (CONF_DIR / "experiment" / f"{name}_{kind}.yaml").is_file():
        raise ValueError(
            f"ckpt_path is required: model={name or model_cfg.get('_target_')} is trained (pass "
            "ckpt_path=<checkpoint written by mrovseg.train>). Without a checkpoint choose a training-free "
            f"model: model={' | '.join(training_free_models())}."
        )
    return f"{name}_{kind}"


def compose_eval_config(overrides: Sequence[str]) -> DictConfig:
    """``conf/eval.yaml`` composed with ``overrides`` (inside a running Hydra app or outside one)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # predict, the demo: their config folder is CONF_DIR
        return compose("eval", overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("eval", overrides=list(overrides))


def build_config(config: str | Mapping[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The build config of a model: ``config`` is an experiment name (composed with ``overrides``, Hydra
    syntax), a composed run config, or a build config (``overrides`` of its groups applied)."""
    from mrovseg.training.checkpoint import apply_overrides, build_config_of

    if isinstance(config, (str, os.PathLike)):
        return build_config_of(compose_eval_config([f"experiment={config}", *overrides]))
    cfg = config if isinstance(config, DictConfig) else OmegaConf.create(dict(config))
    if "data" in cfg or "trainer" in cfg:  # a composed run config, not yet a build config
        return apply_overrides(build_config_of(cfg), overrides)
    return apply_overrides(OmegaConf.to_container(cfg, resolve=False), overrides)


def segmenter_from_config(
    cls: type,
    config: str | Mapping[str, Any],
    overrides: Sequence[str] = (),
    device: Any = "cpu",
    short_side: int | str | None = "auto",
    clip_overrides: Mapping[str, Any] | None = None,
    clip_pretrained: str | os.PathLike | None = None,
    model_overrides: Mapping[str, Any] | None = None,
    window_batch: int | None = None,
    precision: str = "auto",
    **segmenter_options: Any,
) -> Any:
    """``Segmenter.from_config``: a ``cls`` (:class:`~mrovseg.serving.segmenter.Segmenter`) around the
    training-free model of ``config``, with no checkpoint.

        seg = Segmenter.from_config("naclip_vitb16", ["model.post=pamr"], clip_pretrained="ViT-B-16.pt")

    Args:
        config: An experiment name (``naclip_vitb16``, ``sclip_toy``: the method and its protocol), a composed
            run config, or a build config (``clip``, ``model``, ``criterion``, ``module``).
        overrides: Hydra overrides (``model.post=pamr``, ``clip.pretrained=<file>``, ``module.window=448``).
        short_side: ``"auto"`` = the experiment's evaluation resize (``data.eval_short_side``).
        clip_overrides, model_overrides: Entries merged into the CLIP and model configs.
        clip_pretrained: CLIP weight source (a tag, or a local file for offline machines).
        device, precision: Resolved (``Segmenter.from_config`` resolves ``auto``).
        window_batch: As :meth:`Segmenter.from_checkpoint`.
        segmenter_options: Other constructor arguments (``max_pixels``, ``on_large``).

    Raises:
        ValueError: The model has trained parameters (use ``Segmenter.from_checkpoint``).
    """
    from mrovseg.constants import DEFAULT_EVAL_SHORT_SIDE
    from mrovseg.training.checkpoint import build_module

    build = build_config(config, overrides)
    if clip_pretrained is not None:
        clip_overrides = {**(clip_overrides or {}), "pretrained": str(clip_pretrained)}
    for group, extra in (("clip", clip_overrides), ("model", model_overrides)):
        if extra:
            build[group] = OmegaConf.to_container(OmegaConf.merge(build[group], dict(extra)), resolve=False)
    module = build_module(build)
    if module.model.trainable_parameters():
        raise ValueError(
            f"{type(module.model).__name__} has trained parameters: load it with Segmenter.from_checkpoint(<file>). "
            f"from_config builds the training-free models ({', '.join(training_free_models())})."
        )
    if short_side == "auto":
        short_side = (build.get("inference") or {}).get("short_side", DEFAULT_EVAL_SHORT_SIDE)
    return cls.from_module(
        module, window_batch, device=device, short_side=short_side, precision=precision, **segmenter_options
    )


def training_free_source(cfg: DictConfig) -> tuple[str, dict[str, Any]] | None:
    """For ``model=<name>`` without ``ckpt_path`` (predict, the demo): the experiment of that model
    (:func:`experiment_for`) and the options of ``Segmenter.from_config``: ``{"model_overrides": <the model
    config as given, with its command-line overrides>}``; None when a checkpoint is given (its model is the
    checkpoint's)."""
    from mrovseg.training.checkpoint import clip_overrides_of

    if cfg.get("ckpt_path"):
        if cfg.get("model"):
            log.warning("model=... is ignored: the checkpoint %s stores its own model.", cfg.ckpt_path)
        return None
    model = OmegaConf.to_container(cfg.model, resolve=True)
    experiment = experiment_for(model, clip_overrides_of(cfg))
    log.info("No checkpoint: the training-free model and protocol of experiment=%s", experiment)
    return experiment, {"model_overrides": model}
