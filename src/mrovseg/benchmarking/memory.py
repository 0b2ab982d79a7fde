"""Peak memory of a measurement and the largest batch that fits (one doubling search).

* CUDA: ``torch.cuda.max_memory_allocated``, reset before each measurement: the absolute peak
  (weights and inputs included) and its increase over what was allocated before the measurement.
* CPU: the process's resident set size (RSS) sampled every 2 ms by a background thread during the
  measurement (psutil, else ``/proc/self/statm``): the sampled peak and its increase over the RSS just
  before (after ``gc.collect()`` and glibc's ``malloc_trim(0)``, so that memory freed by an earlier
  measurement does not hide this one's). Sampling can miss a spike shorter than 2 ms, so the figures
  are lower bounds.

Largest batch (``search_max_batch``): batch sizes double from 1 up to a cap (tried last when not a
power of two). On CUDA a batch that raises ``torch.cuda.OutOfMemoryError`` ends the search (the cache
is emptied). On the CPU a batch is tried only if its predicted memory — the previous batch's RSS
increase scaled by the batch ratio, which overestimates since the fixed part scales too — fits in
``ram_fraction`` of the currently available RAM (``MemAvailable``), so the search never pushes the
machine into swap (or the OOM killer); an allocation failure also ends it.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field

import torch

try:  # optional: RSS and available RAM; /proc is read otherwise
    import psutil
except ImportError:  # pragma: no cover - psutil comes with wandb
    psutil = None

MIB = 2**20


def current_rss() -> int:
    """Resident set size of this process, bytes."""
    if psutil is not None:
        return psutil.Process().memory_info().rss
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_ram() -> int:
    """RAM available to new allocations without swapping (``MemAvailable``), bytes."""
    if psutil is not None:
        return psutil.virtual_memory().available
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("Cannot read MemAvailable from /proc/meminfo.")


def total_ram() -> int:
    """Physical RAM, bytes."""
    if psutil is not None:
        return psutil.virtual_memory().total
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def release_memory(device: torch.device) -> None:
    """Frees what can be freed: Python garbage, CUDA's cache, glibc's free heap pages."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    with suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


@dataclass
class MemoryStat:
    """Peak memory of one measurement, bytes: absolute and above the memory before it."""

    peak: int
    delta: int
    kind: str


class PeakMemory:
    """Context manager measuring the peak memory of what runs inside it (see the module docstring).

    CUDA: ``max_memory_allocated`` after ``reset_peak_memory_stats``. CPU: RSS sampled every
    ``interval`` seconds by a daemon thread (lower bound: short spikes may be missed).
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.stat: MemoryStat | None = None
        self._base = 0
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, current_rss())

    def __enter__(self) -> PeakMemory:
        release_memory(self.device)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._peak = current_rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            kind = "CUDA max_memory_allocated"
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            peak = max(self._peak, current_rss())
            kind = "CPU RSS (sampled every 2 ms)"
        self.stat = MemoryStat(peak=peak, delta=max(0, peak - self._base), kind=kind)


def is_oom(err: BaseException) -> bool:
    """Whether an exception is an out-of-memory failure (CUDA or a failed CPU allocation)."""
    if isinstance(err, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


@dataclass
class BatchSearch:
    """Result of ``search_max_batch``: the largest batch that ran, why the search stopped, the trials."""

    max_batch: int
    limit: str
    trials: dict[int, MemoryStat | None] = field(default_factory=dict)


def candidate_batches(cap: int) -> Iterator[int]:
    """2, 4, 8, ... below ``cap``, then ``cap`` itself."""
    b = 2
    while b < cap:
        yield b
        b *= 2
    if cap >= 2:
        yield cap


def search_max_batch(
    try_batch: Callable[[int], MemoryStat],
    cap: int,
    device: torch.device,
    batch1: MemoryStat | None,
    ram_fraction: float = 0.75,
    available: Callable[[], int] = available_ram,
    keep_going: Callable[[], bool] | None = None,
) -> BatchSearch:
    """The largest batch (doubling from 1, at most ``cap``) that runs without running out of memory.

    Args:
        try_batch: runs one call at a batch size and returns its memory; may raise an OOM error.
        cap: largest batch tried.
        device: CPU batches are checked against the RAM budget first; CUDA ones are just tried.
        batch1: memory of batch 1 (already measured), the base of the CPU prediction.
        ram_fraction: CPU budget, as a fraction of the available RAM at the time of the check.
        available: available RAM in bytes (injectable for tests).
        keep_going: checked before each trial; False stops the search (``time budget at N``).
    """
    search = BatchSearch(max_batch=1, limit=f"cap {cap}", trials={1: batch1})
    last = batch1
    for b in candidate_batches(cap):
        if keep_going is not None and not keep_going():
            search.limit = f"time budget at {b}"
            return search
        if device.type != "cuda" and last is not None:
            need = last.delta * b / search.max_batch
            budget = available() * ram_fraction
            if need > budget:
                search.limit = f"RAM budget at {b} ({need / MIB:.0f} MiB > {budget / MIB:.0f} MiB)"
                return search
        try:
            stat = try_batch(b)
        except (RuntimeError, MemoryError) as err:
            if not is_oom(err):
                raise
            oom = True
        else:
            oom = False
        if oom:  # outside the except block, so the traceback's tensors are gone
            release_memory(device)
            search.limit = f"OOM at {b}"
            search.trials[b] = None
            return search
        search.trials[b] = last = stat
        search.max_batch = b
    return search
