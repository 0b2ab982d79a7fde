"""Shared helpers of the training / evaluation tests: composed Hydra configs, tiny runs, subprocesses.

Configs are composed from ``conf/`` as ``python -m mrovseg.train`` / ``mrovseg.eval`` compose them
(``return_hydra_config=True``; ``HydraConfig`` is set and the ``hydra`` node removed, as Hydra's own
job runner does), plus :data:`TINY` overrides that make a run take seconds on a 2-core CPU: a
2-block adapter of width 32, 256 sampled points, 2-image batches and 64² evaluation scenes (one
sliding window each), no progress bar. The toy CLIP has random weights: ``clip.pretrained=null``,
or, where two processes or a checkpoint reload must see the *same* CLIP (checkpoints hold no CLIP
weights), a file of fixed random weights written by :func:`random_clip_weights`.

:class:`SameScenesDataModule` serves the same few toy scenes for training, validation and test with
the world's full vocabulary (closed set), for the overfitting test.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader

from mrovseg.config import CONF_DIR
from mrovseg.constants import ASSETS_DIR, IGNORE_INDEX, REPO_ROOT
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.data.toy_datamodule import ToyDataModule, ToyDataset

#: A small MROVSeg on the toy CLIP (the default experiment's adapter is width 96, depth 1, 8 queries).
TINY_MODEL: list[str] = [
    "model.adapter.dim=32",
    "model.adapter.depth=2",
    "model.adapter.num_heads=2",
    "model.adapter.num_queries=8",
    "model.adapter.mask_dim=16",
    "criterion.matcher.num_points=256",
    "criterion.num_points=256",
    "++callbacks.wandb_eval.num_images=1",
]

#: Few, small toy scenes: 64² evaluation scenes are covered by one 64² sliding window.
TINY_DATA: list[str] = [
    "data.batch_size=2",
    "data.eval_size=[64,64]",
    "data.eval_num_objects=[1,4]",
    "data.num_val=2",
    "data.num_test=2",
]

#: Two training steps, validation after the second; no progress bar or model summary.
TINY_TRAINER: list[str] = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "++callbacks.rich_progress_bar=null",
    "++callbacks.model_summary=null",
]

TINY: list[str] = TINY_MODEL + TINY_DATA + TINY_TRAINER

#: Closed-set training on the same 2 toy scenes (:class:`SameScenesDataModule`) that a tiny model
#: memorises within a few hundred steps although its CLIP has random weights. That needs prompts
#: without a template (with "a photo of a {}." the random text embeddings of the 31 names are
#: nearly parallel) and all 3 CLIP blocks in the classifier; the two scenes (world seed 1) hold
#: objects of four different colours, which random CLIP features tell apart (shapes hardly).
OVERFIT_MODEL: list[str] = [
    "~module.templates",
    "+module.templates=['{}']",
    "model.num_cls_blocks=3",
    "model.adapter.num_queries=16",
]
OVERFIT: list[str] = [
    *OVERFIT_MODEL,
    "data._target_=tests.helpers.SameScenesDataModule",
    "+data.num_scenes=2",
    "data.seed=1",
    "data.num_objects=[1,3]",
    "data.diameter_range=[10,32]",
    "module.optimizer.lr=1e-2",
    "criterion.num_points=1024",
    "criterion.matcher.num_points=1024",
]

#: The scalar metrics of a toy-world entry of ``metrics.json`` (base/novel classes, a small-object region).
SCALAR_KEYS = {"mIoU", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU", "pixel_acc"}
#: Their 95 % bootstrap intervals (every mean metric; pixel accuracy has none).
INTERVAL_KEYS = {f"{k}_ci95" for k in SCALAR_KEYS - {"pixel_acc"}}
#: The keys of every benchmark entry of ``metrics.json`` for the toy world.
METRIC_KEYS = SCALAR_KEYS | INTERVAL_KEYS | {"per_class_iou", "num_images", "ci_resamples"}

TOY_CLIP_CONFIG = ASSETS_DIR / "toy_clip" / "toy-vit-p4-32.json"


def random_clip_weights(path: Path, seed: int = 0) -> Path:
    """Writes a state dict of the toy CLIP with random weights (``seed``) to ``path``; returns it."""
    from mrovseg.model.clip_backbone import CLIPBackbone

    if not path.exists():
        torch.manual_seed(seed)
        backbone = CLIPBackbone("toy-vit-p4-32", pretrained=None, model_config=str(TOY_CLIP_CONFIG))
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(backbone.clip.state_dict(), path)
    return path


@contextmanager
def composed(
    config_name: str, output_dir: Path, overrides: Sequence[str] = (), base: Sequence[str] = TINY
) -> Iterator[DictConfig]:
    """Composes ``conf/<config_name>.yaml`` with ``base`` + ``overrides`` and sets ``HydraConfig``.

    Yields the job config (no ``hydra`` node) whose ``paths.output_dir`` is ``output_dir``; the
    global Hydra state is cleared on exit, so tests can compose one after another. ``clip.pretrained``
    defaults to null (random weights) unless ``overrides`` set it.
    """
    overrides = list(overrides)
    if not any(o.startswith("clip.pretrained=") for o in overrides):
        overrides.insert(0, "clip.pretrained=null")
    GlobalHydra.instance().clear()
    output_dir.mkdir(parents=True, exist_ok=True)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name=config_name,
            overrides=[*base, *overrides, f"hydra.run.dir={output_dir}"],
            return_hydra_config=True,
        )
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.job.num = 0
            cfg.hydra.job.id = "test"
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        try:
            yield cfg
        finally:
            HydraConfig.instance().cfg = None  # type: ignore[assignment]
    GlobalHydra.instance().clear()


def compose_with_hydra(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The composed config *with* its ``hydra`` node (sweeper parameters, mode); nothing is run."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of ``python -m mrovseg.*`` children: few threads, offline, no W&B account."""
    env = dict(os.environ)
    threads = os.environ.get("MROVSEG_TEST_THREADS", "1")
    env.update(
        OMP_NUM_THREADS=threads,
        MKL_NUM_THREADS=threads,
        WANDB_MODE="offline",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_entry_point(
    module: str, args: Sequence[str], timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m <module> <args>`` from the repository root; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """The tail of a child's output, for assertion messages."""
    return (
        f"exit code {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    )


def numpy_seg_metrics(
    preds: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    num_classes: int,
    seen: Sequence[int] | None = None,
    regions: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """Independent reference of detectron2 v0.6's ``SemSegEvaluator`` (percent): mIoU over classes in
    the ground truth or the prediction, pixel accuracy, per-class IoU (NaN = absent), base/novel/hIoU
    over ``seen`` and the region mIoU over classes present in the region's ground truth."""

    def confusion(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        conf = np.zeros((num_classes, num_classes), np.int64)
        for p, t in pairs:
            np.add.at(conf, (t, p), 1)
        return conf

    def iou(conf: np.ndarray) -> np.ndarray:
        tp = np.diag(conf).astype(np.float64)
        union = conf.sum(0) + conf.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan) * 100

    keep = [lab != IGNORE_INDEX for lab in labels]
    conf = confusion([(p[k], t[k]) for p, t, k in zip(preds, labels, keep)])
    per_class = iou(conf)
    out: dict[str, Any] = {
        "mIoU": np.nanmean(per_class),
        "pixel_acc": np.diag(conf).sum() / conf.sum() * 100,
        "per_class_iou": per_class,
    }
    if seen is not None:
        mask = np.zeros(num_classes, bool)
        mask[list(seen)] = True
        base, novel = np.nanmean(per_class[mask]), np.nanmean(per_class[~mask])
        out.update(
            base_mIoU=base,
            novel_mIoU=novel,
            hIoU=0.0 if 0 in (base, novel) else 2 * base * novel / (base + novel),
        )
    if regions is not None:
        region_conf = confusion([(p[k & r], t[k & r]) for p, t, k, r in zip(preds, labels, keep, regions)])
        in_gt = region_conf.sum(1) > 0
        out["small_mIoU"] = np.nanmean(iou(region_conf)[in_gt])
    return out


class SameScenesDataModule(ToyDataModule):
    """Closed-set toy data: the same ``num_scenes`` scenes (``train_size``²) for train, val and test.

    Training labels are the world's class ids (nothing remapped or ignored) and the training
    vocabulary is the benchmark's, so a model that memorises the scenes scores mIoU 100. Each
    training batch holds every scene, in a fixed order (one step per epoch).
    """

    def __init__(self, num_scenes: int = 2, **kwargs: Any) -> None:
        kwargs["batch_size"] = num_scenes
        super().__init__(**kwargs)
        self.num_scenes = num_scenes

    @property
    def train_class_names(self) -> list[str]:
        return list(self.world.class_names)

    @property
    def eval_benchmarks(self) -> list[BenchmarkInfo]:
        return [BenchmarkInfo("toy", list(self.world.class_names), None)]

    def scenes(self) -> ToyDataset:
        """The scenes, labelled with the world's class ids."""
        return ToyDataset(self.world, self.train_cfg, self.seed, "train", self.num_scenes)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.scenes(), self.batch_size, train=False)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader(self.scenes(), 1, train=False)]

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()


class ReseedEachStep(L.Callback):
    """Seeds the global RNG with ``seed + global_step`` before every training step.

    The loss samples random points; reseeding per step makes an interrupted and resumed run draw
    the same points as an uninterrupted one.
    """

    def __init__(self, seed: int = 1234) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        torch.manual_seed(self.seed + trainer.global_step)


class CrashAtStep(L.Callback):
    """Simulates a crash (``RuntimeError``) when training is about to run step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


class RecordTrainStart(L.Callback):
    """Records, when training starts (after a checkpoint is restored), the step and the optimiser
    and scheduler states in :attr:`records` (class attribute: Hydra instantiates the callback)."""

    records: list[dict[str, Any]] = []  # noqa: RUF012

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        RecordTrainStart.records.append(
            {
                "global_step": trainer.global_step,
                "optimizer": copy.deepcopy(trainer.optimizers[0].state_dict()),
                "scheduler": copy.deepcopy(trainer.lr_scheduler_configs[0].scheduler.state_dict()),
            }
        )


_TRAINED: dict[Path, tuple[Path, L.LightningModule]] = {}


def tiny_trained_run(root: Path) -> tuple[Path, L.LightningModule]:
    """Trains a tiny model in-process once per ``root`` and returns the run directory and the module.

    Configs that evaluate its checkpoint need ``OVERFIT_MODEL`` (its architecture and prompts).

    100 steps on the 2 scenes of :class:`SameScenesDataModule` with the full toy vocabulary (so the
    model predicts background and a few objects rather than one class everywhere), validation at
    the end, no logger, the toy CLIP of :func:`random_clip_weights` (``<run>/clip.pt``).
    ``<run>/checkpoints/last.ckpt`` holds the final weights.
    """
    from mrovseg.train import build
    from mrovseg.training.trainer import make_trainer

    if root not in _TRAINED:
        run = root / "run"
        clip = random_clip_weights(run / "clip.pt")
        overrides = [
            f"clip.pretrained={clip}",
            *OVERFIT,
            "trainer.max_steps=100",
            "trainer.val_check_interval=100",
        ]
        with composed("train", run, [*overrides, "logger={}"]) as cfg:
            L.seed_everything(cfg.seed)
            datamodule, module = build(cfg)
            make_trainer(cfg).fit(module, datamodule=datamodule)
        _TRAINED[root] = (run, module.eval())
    return _TRAINED[root]
