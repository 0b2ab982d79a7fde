"""Shared helpers for the training / evaluation tests: composed Hydra configs, tiny runs, subprocesses.

Configs are composed from ``conf/`` exactly as ``python -m mrovseg.train`` / ``mrovseg.eval`` compose
them (``return_hydra_config=True``; ``HydraConfig`` is set and the ``hydra`` node removed, as Hydra's
own job runner does), with :data:`TINY` overrides that make a run take seconds on a 2-core CPU:
random toy-CLIP weights (``clip.pretrained=null``), a 2-block adapter of width 32, 256 sampled
points, 2-image batches and a handful of 64² evaluation scenes (one sliding window each).

The helper datamodule :class:`SameScenesDataModule` serves the same few toy scenes for training,
validation and test with the world's full vocabulary (closed set), for overfitting tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from mrovseg.config import CONF_DIR
from mrovseg.constants import REPO_ROOT
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.data.toy_datamodule import ToyDataModule, ToyDataset

#: Overrides shared by every tiny run (train and eval): a small model on small toy scenes.
TINY_MODEL: list[str] = [
    "clip.pretrained=null",
    "model.adapter.dim=32",
    "model.adapter.depth=2",
    "model.adapter.num_heads=2",
    "model.adapter.num_queries=8",
    "model.adapter.mask_dim=16",
    "criterion.matcher.num_points=256",
    "criterion.num_points=256",
    "module.templates.name=photo",
    "module.num_log_images=1",
]

TINY_DATA: list[str] = [
    "data.batch_size=2",
    "data.eval_size=[64,64]",
    "data.eval_num_objects=[1,4]",
    "data.num_val=2",
    "data.num_test=2",
]

TINY_TRAINER: list[str] = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
]

TINY: list[str] = TINY_MODEL + TINY_DATA + TINY_TRAINER

#: The keys every benchmark entry of ``metrics.json`` carries for the toy world.
METRIC_KEYS = {"mIoU", "base_mIoU", "novel_mIoU", "hIoU", "small_mIoU", "pixel_acc", "per_class_iou", "num_images"}


@contextmanager
def composed(config_name: str, output_dir: Path, overrides: Sequence[str] = ()) -> Iterator[DictConfig]:
    """Composes ``conf/<config_name>.yaml`` with ``TINY`` + ``overrides`` and sets ``HydraConfig``.

    Yields the job config (no ``hydra`` node) whose ``paths.output_dir`` is ``output_dir``. The
    global Hydra state is cleared on exit, so tests can compose one after another.
    """
    GlobalHydra.instance().clear()
    output_dir.mkdir(parents=True, exist_ok=True)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name=config_name,
            overrides=[*TINY, *overrides, f"hydra.run.dir={output_dir}"],
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


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m mrovseg.*`` children: one thread each, no network, no W&B account."""
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
    """Runs ``python -m <module> <args>`` from the repository root and returns the finished process."""
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
    return f"exit code {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"


class SameScenesDataModule(ToyDataModule):
    """Closed-set toy data: the same ``num_scenes`` scenes (``train_size``²) for train, val and test.

    Training labels are the world's class ids (no base remapping, nothing ignored) and the training
    vocabulary is the benchmark's, so a model that memorises the scenes scores mIoU → 100.
    Training batches hold every scene, in a fixed order (one step per epoch).
    """

    def __init__(self, num_scenes: int = 2, **kwargs: Any) -> None:
        kwargs.setdefault("batch_size", num_scenes)
        super().__init__(**kwargs)
        self.num_scenes = num_scenes

    @property
    def train_class_names(self) -> list[str]:
        return list(self.world.class_names)

    @property
    def eval_benchmarks(self) -> list[BenchmarkInfo]:
        return [BenchmarkInfo("toy", list(self.world.class_names), None)]

    def _scenes(self) -> ToyDataset:
        return ToyDataset(self.world, self.train_cfg, self.seed, "train", self.num_scenes)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self._scenes(), self.batch_size, train=False)

    def val_dataloader(self) -> list[torch.utils.data.DataLoader]:
        return [self._loader(self._scenes(), 1, train=False)]

    def test_dataloader(self) -> list[torch.utils.data.DataLoader]:
        return self.val_dataloader()


class ReseedEachStep(L.Callback):
    """Seeds the global RNG with ``seed + global_step`` before every training step.

    The loss samples random points; reseeding per step makes a run that is interrupted and resumed
    draw the same points as an uninterrupted one.
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
