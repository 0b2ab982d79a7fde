"""Checks of a composed config before any work: the settings' types and the folders a run writes to.

The entry points (``train``, ``eval``, ``predict``, the demo) call :func:`check_config` first, so a
setting of the wrong type (``trainer.max_steps=abc``) or an output folder that is an existing file
stops the run with one line per problem, before a model is built or a checkpoint read. Settings a
config does not have are skipped; Lightning and the classes check everything else when they are built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: Settings that must be integers: ``name -> null allowed``.
INTEGERS: dict[str, bool] = {
    "seed": False,
    "global_batch_size": True,
    "trainer.max_steps": False,
    "trainer.max_epochs": True,
    "trainer.min_steps": True,
    "trainer.min_epochs": True,
    "trainer.log_every_n_steps": False,
    "trainer.num_sanity_val_steps": False,
    "trainer.num_nodes": False,
    "trainer.accumulate_grad_batches": False,
    "trainer.check_val_every_n_epoch": True,
    "data.batch_size": False,
    "data.num_workers": False,
}

#: The smallest value of some of them (``max_steps=-1``: no limit, Lightning's convention).
MINIMUM: dict[str, int] = {
    "trainer.max_steps": -1,
    "trainer.log_every_n_steps": 1,
    "trainer.num_nodes": 1,
    "trainer.accumulate_grad_batches": 1,
    "data.batch_size": 1,
    "data.num_workers": 0,
    "global_batch_size": 1,
}

#: Settings that are a count (an integer) or a fraction (a float), or null.
NUMBERS: tuple[str, ...] = (
    "trainer.val_check_interval",
    "trainer.limit_train_batches",
    "trainer.limit_val_batches",
    "trainer.limit_test_batches",
    "trainer.gradient_clip_val",
)

#: Folders runs write into: each must be a directory or not exist yet (it is created then).
DIRECTORIES: tuple[str, ...] = ("paths.output_dir", "output_dir")

_ABSENT = object()


class ConfigError(ValueError):
    """Settings of the wrong type or value, or an output folder that cannot be one; one line each."""


def _value(cfg: DictConfig, key: str) -> Any:
    """The resolved value of ``key``, or ``_ABSENT`` when the config has no such setting (or it cannot
    be resolved here, e.g. ``${hydra:...}`` outside a Hydra run)."""
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except Exception:  # an interpolation that needs Hydra's runtime: nothing to check here
        return _ABSENT


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def type_problems(cfg: DictConfig) -> list[str]:
    """One line per setting of :data:`INTEGERS` / :data:`NUMBERS` whose value has the wrong type or range."""
    problems = []
    for key, nullable in INTEGERS.items():
        value = _value(cfg, key)
        if value is _ABSENT or (value is None and nullable):
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key} must be an integer{' or null' if nullable else ''}, got {_shown(value)}.")
        elif key in MINIMUM and value < MINIMUM[key]:
            problems.append(f"{key} must be at least {MINIMUM[key]}, got {value}.")
    for key in NUMBERS:
        value = _value(cfg, key)
        if value is _ABSENT or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{key} must be a number (a count or a fraction) or null, got {_shown(value)}.")
        elif value < 0:
            problems.append(f"{key} must not be negative, got {value}.")
    return problems


def directory_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be the folder ``key`` names (an existing file, a file on the way, no write
    permission), or None."""
    path = Path(str(value)).expanduser()
    if path.exists() and not path.is_dir():
        return f"{key}={value} is an existing file, not a folder: give a folder (it is created if missing)."
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{key}={value} cannot be created: {parent} is a file, not a folder."
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{key}={value} cannot be written: no write permission in {parent}."
    return None


def check_config(cfg: DictConfig) -> None:
    """Raises :class:`ConfigError` with one line per problem of ``cfg`` (types, ranges, output folders).

    Call it first in an entry point, before anything is built or loaded.
    """
    problems = type_problems(cfg)
    for key in DIRECTORIES:
        value = _value(cfg, key)
        if value is not _ABSENT and value not in (None, "") and (problem := directory_problem(key, value)):
            problems.append(problem)
    if problems:
        raise ConfigError("\n".join(problems) if len(problems) > 1 else problems[0])
