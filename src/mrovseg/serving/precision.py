"""Inference precision of predict, eval, the demo and :class:`~mrovseg.serving.segmenter.Segmenter`.

``precision`` is one of:

* ``fp32`` — everything in float32, exactly as before this setting existed (bit-identical);
* ``bf16`` — the frozen CLIP's linear and convolution weights (``nn.Linear``, ``nn.Conv2d``, the attention
  blocks' ``in_proj_weight``) are converted to bfloat16 once, at load (:func:`prepare_model`), and the
  forward passes — vision and text — run under ``torch.autocast(<device>, dtype=torch.bfloat16)``
  (:func:`precision_context`). Converting the weights keeps CLIP's activations (residual stream,
  LayerNorm outputs, GELU) in bf16 too, where autocast alone would round-trip them through float32 and
  re-cast every weight on every call: ViT-B/16 at 640² ran about 1.5–2× faster than under autocast alone
  on the 2-core AVX512-BF16 box (``BENCHMARKS.md``, "CPU inference precision"). LayerNorm weights stay
  float32; the adapter, decoder and classifier keep float32 weights under autocast. Scores and text
  embeddings are returned in float32;
* ``auto`` — ``bf16`` where the device runs it natively (:func:`bf16_support`: a CUDA GPU with bf16, a
  CPU whose flags show AVX512-BF16 or AMX), ``fp32`` elsewhere; the choice and its reason are logged.

A model class listed in :data:`BF16_UNSAFE` runs fp32 under ``auto`` (logged) and refuses ``bf16`` with the
reason. None is listed today: OVSeg's CLIP ensemble, once listed, keeps its region probabilities in float32
under autocast (model/ovseg/ovseg.py) and scores within 0.3 mIoU of fp32 on the toy world (BENCHMARKS.md).

``int8`` (dynamic int8 quantization of CLIP's linear layers) was measured and is **not offered**: on the
AVX512-BF16/AMX box torchao's dynamic int8 ran no faster than fp32 in eager mode and torch's own
``quantize_dynamic`` (deprecated since torch 2.10) slower than bf16; :func:`resolve_precision` says so.
``scripts/bench_cpu_precision.py`` keeps measuring it.

A model prepared for bf16 holds bf16 weights and must run under :func:`precision_context`; preparing is
in place and one-way (a :class:`Segmenter` owns its model). Training never calls this module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "BF16_CPU_FLAGS",
    "BF16_UNSAFE",
    "NOT_OFFERED",
    "PRECISIONS",
    "accelerator_device",
    "bf16_support",
    "check_precision",
    "cpu_flags",
    "precision_context",
    "prepare_model",
    "resolve_precision",
]

log = logging.getLogger(__name__)

#: The accepted values of ``precision``.
PRECISIONS = ("auto", "fp32", "bf16")
#: Values that were measured and are refused, with the reason shown to the user.
NOT_OFFERED = {
    "int8": (
        "precision=int8 is not offered: dynamic int8 quantization of CLIP's linear layers was measured "
        "slower than bf16 on an AVX512-BF16/AMX CPU (torchao's eager int8 no faster than fp32; torch's "
        "deprecated quantize_dynamic about 1.5x slower than bf16) - see BENCHMARKS.md, 'CPU inference "
        "precision'. Use precision=bf16 (or auto)."
    )
}
_ALIASES = {"float32": "fp32", "32": "fp32", "32-true": "fp32", "bfloat16": "bf16", "bf16-mixed": "bf16"}
#: Model classes (by name) that do not run under bf16 autocast, with the reason.
BF16_UNSAFE: dict[str, str] = {}
#: ``/proc/cpuinfo`` flags of CPUs with native bf16 matrix instructions (AVX512-BF16, AMX).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_MARK = "_mrovseg_precision"  # attribute set on a prepared model


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; a CUDA device without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device} was requested but no CUDA GPU is available; use device=cpu.")
    return dev


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (the first ``flags`` line of ``/proc/cpuinfo``); empty where unreadable."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def bf16_support(device: torch.device | str, flags: Iterable[str] | None = None) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 natively, and why (for the log).

    CUDA: ``torch.cuda.is_bf16_supported`` without emulation (Ampere or newer). CPU: one of
    :data:`BF16_CPU_FLAGS` or an ``amx*`` flag in ``flags`` (default: :func:`cpu_flags`). Other devices: no.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            ok = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch without the argument
            ok = torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(device) if torch.cuda.is_available() else "cuda"
        return ok, f"CUDA device {name} {'supports' if ok else 'has no native'} bf16"
    if device.type == "cpu":
        have = frozenset(cpu_flags() if flags is None else flags)
        found = sorted(f for f in have if f in BF16_CPU_FLAGS or f == "amx" or f.startswith("amx_"))
        if found:
            return True, f"CPU flags {', '.join(found)}"
        return False, f"CPU without {' / '.join(BF16_CPU_FLAGS)} / amx flags"
    return False, f"no bf16 rule for device type {device.type!r}"


def check_precision(precision: str | None) -> str:
    """The setting, normalised (``auto``, ``fp32`` or ``bf16``; None = ``fp32``; ``bfloat16`` = ``bf16``).

    Raises:
        ValueError: An unknown value, or one that is not offered (``int8``, see :data:`NOT_OFFERED`).
    """
    value = "fp32" if precision is None else str(precision).strip().lower()
    value = _ALIASES.get(value, value)
    if value in NOT_OFFERED:
        raise ValueError(NOT_OFFERED[value])
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    return value


def resolve_precision(
    precision: str | None,
    device: torch.device | str,
    flags: Iterable[str] | None = None,
    model: nn.Module | None = None,
) -> str:
    """``fp32`` or ``bf16`` for a setting (:func:`check_precision`) on ``device`` for ``model``.

    ``auto`` decides by :func:`bf16_support` (and ``fp32`` for a model in :data:`BF16_UNSAFE`) and logs
    its choice.

    Raises:
        ValueError: A bad setting, or ``bf16`` for a model in :data:`BF16_UNSAFE`.
    """
    value = check_precision(precision)
    unsafe = BF16_UNSAFE.get(type(model).__name__) if model is not None else None
    if value == "bf16" and unsafe:
        raise ValueError(f"precision=bf16 is not supported for this model: {unsafe}. Use precision=fp32.")
    if value != "auto":
        return value
    ok, why = bf16_support(device, flags)
    if ok and unsafe:
        ok, why = False, f"{why}, but {unsafe}"
    chosen = "bf16" if ok else "fp32"
    log.info("precision=auto -> %s on %s (%s)", chosen, torch.device(device), why)
    return chosen


def accelerator_device(accelerator: str) -> torch.device:
    """The device a Lightning ``trainer.accelerator`` runs on (``gpu``/``cuda`` → CUDA; ``auto`` → CUDA
    when available; anything else → CPU), for :func:`resolve_precision`."""
    name = str(accelerator).lower()
    if name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def precision_context(precision: str, device: torch.device | str) -> AbstractContextManager:
    """bf16 autocast on the device for ``bf16``; nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"Expected a resolved precision (fp32 or bf16), got {precision!r}.")
    return nullcontext()


def prepare_model(model: nn.Module, precision: str) -> nn.Module:
    """Readies a model ending in ``model.backbone`` (a :class:`~mrovseg.model.clip_backbone.CLIPBackbone`)
    for a resolved ``precision``, in place; returns it.

    ``fp32`` changes nothing. ``bf16`` converts the frozen CLIP's weights (see the module docstring) after
    fixing the text tower's fingerprint on the original weights (the disk cache key; the precision is a
    separate part of the key) and emptying the backbone's in-memory text caches. Preparing a model twice
    for the same precision is a no-op; for another precision after bf16 is an error.
    """
    done = getattr(model, _MARK, "fp32")
    if precision == done:
        return model
    if done != "fp32":
        raise ValueError(f"This model was prepared for {done}; load it again for precision={precision}.")
    if precision == "bf16":
        backbone = model.backbone
        if hasattr(backbone, "text_fingerprint"):
            from mrovseg.model.text_cache import cache_dir

            if cache_dir() is not None:
                backbone.text_fingerprint()  # of the original weights, computed once and kept
        for cache in ("_text_cache", "_name_cache"):  # entries computed in fp32
            if isinstance(getattr(backbone, cache, None), dict):
                getattr(backbone, cache).clear()
        backbone.cast_weights(torch.bfloat16)
    elif precision != "fp32":
        raise ValueError(f"Expected a resolved precision (fp32 or bf16), got {precision!r}.")
    setattr(model, _MARK, precision)
    return model
