"""Where one training step spends its time: ``torch.profiler`` over labelled parts, with their FLOPs.

``labelled_parts`` wraps the methods that make up a step (on the instances, or in the criterion's
module for its point-sampling functions) so each call runs inside ``record_function(<label>)`` and,
when a ``FlopCounterMode`` is active, adds its FLOPs to the label. Labels nest (the classifier runs
CLIP blocks, the criterion runs the matcher); a label re-entered inside itself is not recorded
twice. Parts:

* ``CLIP trunk`` — ``model.encode_views`` (normalise, slice, one batched pass of the frozen trunk);
* ``adapter`` — ``model.adapter`` (MRF fusions + adapter blocks, Eq. 2-3);
* ``mask decoder`` — ``model.decoder.pixel_features`` and ``model.decoder.masks`` (Eq. 4-5);
* ``classifier`` — ``attention_features``, ``attention_bias`` and the classifier forward (Eq. 6-8),
  final and auxiliary predictions;
* ``criterion`` with ``criterion: matcher`` and ``criterion: point sampling`` inside it (the rest
  is the losses);
* ``backward`` and ``optimizer`` (``TrainStep.backward`` incl. clipping, ``TrainStep.optimize``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from torch.profiler import ProfilerActivity, profile, record_function

import mrovseg.model.criterion as criterion_module
from mrovseg.benchmarking.flops import flop_counter
from mrovseg.benchmarking.train_step import TrainStep

STEP = "training step"
#: Table order: (label, parent label or None).
PARTS: tuple[tuple[str, str | None], ...] = (
    ("CLIP trunk", None),
    ("adapter", None),
    ("mask decoder", None),
    ("classifier", None),
    ("criterion", None),
    ("criterion: matcher", "criterion"),
    ("criterion: point sampling", "criterion"),
    ("backward", None),
    ("optimizer", None),
)


@dataclass
class Tally:
    """FLOPs per label, counted while a ``FlopCounterMode`` runs (``counter``)."""

    counter: Any = None
    flops: dict[str, int] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)


def _wrap(fn: Callable[..., Any], label: str, tally: Tally) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if label in tally.active:
            return fn(*args, **kwargs)
        tally.active.add(label)
        before = tally.counter.get_total_flops() if tally.counter is not None else 0
        try:
            with record_function(label):
                return fn(*args, **kwargs)
        finally:
            tally.active.discard(label)
            if tally.counter is not None:
                tally.flops[label] = tally.flops.get(label, 0) + tally.counter.get_total_flops() - before

    return wrapper


@contextmanager
def _patched(obj: Any, name: str, label: str, tally: Tally) -> Iterator[None]:
    """Replaces ``obj.name`` by its labelled wrapper (an instance attribute or a module global)."""
    own = vars(obj).get(name)  # a module's function; None for a method found on the class
    setattr(obj, name, _wrap(getattr(obj, name), label, tally))
    try:
        yield
    finally:
        if own is not None:
            setattr(obj, name, own)
        else:
            delattr(obj, name)


@contextmanager
def labelled_parts(step: TrainStep, tally: Tally) -> Iterator[None]:
    """Wraps the step's parts with their labels (see the module docstring) while inside."""
    model = step.model
    targets = [
        (model, "encode_views", "CLIP trunk"),
        (model.adapter, "forward", "adapter"),
        (model.decoder, "pixel_features", "mask decoder"),
        (model.decoder, "masks", "mask decoder"),
        (model.classifier, "attention_features", "classifier"),
        (model.classifier, "attention_bias", "classifier"),
        (model.classifier, "forward", "classifier"),
        (step.criterion, "forward", "criterion"),
        (step.criterion.matcher, "forward", "criterion: matcher"),
        (criterion_module, "uncertain_points", "criterion: point sampling"),
        (criterion_module, "point_sample", "criterion: point sampling"),
        (step, "backward", "backward"),
        (step, "optimize", "optimizer"),
    ]
    with ExitStack() as stack:
        for obj, name, label in targets:
            stack.enter_context(_patched(obj, name, label, tally))
        yield


def part_flops(step: TrainStep) -> dict[str, int]:
    """FLOPs of each part (and of the whole step) in one step, attention counted explicitly."""
    tally = Tally(counter=flop_counter())
    with labelled_parts(step, tally), tally.counter:
        step.step()
    tally.flops[STEP] = tally.counter.get_total_flops()
    return tally.flops


def profile_step(step: TrainStep, warmup: int = 1) -> tuple[dict[str, float], Any]:
    """Seconds of each part in one profiled step (after ``warmup`` steps) and the profiler."""
    tally = Tally()
    with labelled_parts(step, tally):
        for _ in range(warmup):
            step.step()
        with profile(activities=[ProfilerActivity.CPU]) as prof, record_function(STEP):
            step.step()
    labels = {label for label, _ in PARTS} | {STEP}
    seconds = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages() if e.key in labels}
    return seconds, prof
