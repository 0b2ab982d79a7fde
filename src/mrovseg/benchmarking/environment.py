"""Where a benchmark ran: date, device, versions, load; and which SDPA kernel attention dispatched to.

``sdpa_kernels`` runs one forward under a ``TorchDispatchMode`` that records the aten op each
``F.scaled_dot_product_attention`` call reached (``_scaled_dot_product_flash_attention`` /
``_efficient_attention`` / ``_cudnn_attention`` on CUDA, ``_flash_attention_for_cpu`` on the CPU;
no such op means the unfused math path, made of ``bmm``\\ s). Calls with an attention mask are the
classifier's biased attention (Eq. 8); calls without are the CLIP trunk's and the adapter's.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mrovseg.benchmarking.memory import total_ram
from mrovseg.constants import REPO_ROOT

MATH = "math (unfused bmm + softmax)"


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo``), else ``platform``'s guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """HEAD's short hash (``-dirty`` when tracked files differ from it), or None outside git."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: str, **settings: Any) -> dict[str, Any]:
    """Date, device, versions and load of this run, plus ``settings`` (the JSON metadata)."""
    import open_clip

    dev = torch.device(device)
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
        "device": device,
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "ram_gib": round(total_ram() / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **settings,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "driver": gpu_driver() if dev.type == "cuda" else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        meta["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        meta["gpu_capability"] = f"{props.major}.{props.minor}"
    return meta


def gpu_driver() -> str | None:
    """The NVIDIA driver version (``nvidia-smi``), or None."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def header(meta: dict[str, Any]) -> str:
    """The printed header: date, device and versions."""
    gpu = f", {meta['gpu_memory_gib']} GiB, sm {meta['gpu_capability']}" if "gpu_memory_gib" in meta else ""
    precision = "bf16 autocast" if meta.get("bf16") else "fp32"
    return (
        f"# MROVSeg benchmark, {meta['date']}; device {meta['device']} ({meta['device_name']}{gpu}); "
        f"CPU {meta['cpu']} × {meta['cpu_count']}, {meta['threads']} torch threads, {meta['ram_gib']} GiB RAM, "
        f"load average {meta['load_average'][0]}\n"
        f"# torch {meta['torch']}, open_clip {meta['open_clip']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}, "
        f"Python {meta['python']}; {precision}; commit {meta['git_commit']}"
    )


class _RecordSDPA(TorchDispatchMode):
    """Records the aten SDPA kernel of every call: (kernel name, has a mask)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bool]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name.startswith("_scaled_dot_product") and not name.endswith("backward"):
            mask = kwargs.get("attn_mask", kwargs.get("attn_bias"))
            if mask is None and name.endswith("efficient_attention") and len(args) > 3:
                mask = args[3]  # (query, key, value, attn_bias, ...)
            self.calls.append((name.lstrip("_"), mask is not None))
        return func(*args, **kwargs)


def sdpa_kernels(fn: Callable[[], Any]) -> dict[str, dict[str, int]]:
    """Which kernel SDPA picked in one call of ``fn``: ``{"unmasked": {...}, "biased": {...}}``.

    Each maps a kernel name to its number of calls. A call of ``F.scaled_dot_product_attention``
    that reached no fused kernel ran the math path; those are not seen here (they are ``bmm``\\ s),
    so an empty dict reads as ``MATH`` (``describe_kernels``).
    """
    mode = _RecordSDPA()
    with torch.no_grad(), mode:
        fn()
    out: dict[str, Counter[str]] = {"unmasked": Counter(), "biased": Counter()}
    for name, masked in mode.calls:
        out["biased" if masked else "unmasked"][name] += 1
    return {key: dict(counter) for key, counter in out.items()}


def describe_kernels(kernels: dict[str, int]) -> str:
    """``name ×calls`` joined, or ``MATH`` for no fused kernel."""
    return ", ".join(f"{name} ×{n}" for name, n in kernels.items()) or MATH
