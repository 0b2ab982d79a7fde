"""Wall-clock timing of calls on the CPU or a CUDA device (synchronised), and the precision context."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Waits for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call (CUDA work included: synchronised before and after)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def time_runs(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds per call of ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        timed(fn, device)
    return [timed(fn, device) for _ in range(repeats)]


def time_pair(
    full: Callable[[], Any], trunk: Callable[[], Any], repeats: int, warmup: int, device: torch.device
) -> tuple[list[float], list[float]]:
    """Seconds per call of two functions, alternated run by run so both see the same machine load."""
    for _ in range(warmup):
        timed(full, device)
        timed(trunk, device)
    runs_full, runs_trunk = [], []
    for _ in range(repeats):
        runs_full.append(timed(full, device))
        runs_trunk.append(timed(trunk, device))
    return runs_full, runs_trunk


def precision_context(bf16: bool, device: torch.device) -> Any:
    """bf16 autocast on the device, or nothing (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
