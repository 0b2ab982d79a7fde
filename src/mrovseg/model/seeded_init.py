"""Initial weights keyed by name: common random numbers for paired comparisons (``seed_by_name=true``).

Built the usual way, a network draws its initial weights from one stream of torch's global RNG, in
construction order: a setting that changes one parameter's shape (16 queries instead of 8, a second
adapter block) shifts every draw after it, so two settings run on the same seed share nothing but
the seed's number. Here each trainable module is drawn again from its own generator state, seeded
by ``(seed, the module's qualified name)`` alone: modules whose name and shape two settings share
start from the same weights, whatever else differs. This is the variance-reduction technique of
common random numbers (Glasserman & Yao, "Some guidelines and guarantees for common random numbers",
Management Science 1992) applied to paired seed comparisons (``scripts/seeds.py``); the distributions
are the modules' own (their ``reset_parameters``), only the draws move.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import torch
from torch import nn


def derived_seed(seed: int, name: str) -> int:
    """A seed in ``[0, 2^63)`` that depends on ``seed`` and ``name`` only (SHA-256; stable across runs)."""
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _post_order(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    """Children before their parent, so a parent's own rule (a gate that starts at zero) is applied last."""
    for name, child in module.named_children():
        yield from _post_order(child, f"{prefix}.{name}")
    yield prefix, module


def redraw_by_name_(
    parts: dict[str, nn.Module], seed: int, linear_init: Callable[[nn.Linear], None] | None = None
) -> list[str]:
    """Re-initialises every trainable module under ``parts`` (name → module), each under its own seed.

    A module is redrawn when it owns trainable parameters or defines ``reset_parameters`` for a
    trainable subtree (a parent that zeroes a child's gate). ``linear_init``: applied to each
    ``nn.Linear`` right after its reset, under the same seed (the ViT initialisation). Frozen modules
    (CLIP) are left alone. Returns the names redrawn, in order.

    Raises:
        TypeError: a module owns trainable parameters but has no ``reset_parameters``, so its
            distribution is unknown here (give the class one).
    """
    redrawn = []
    with torch.random.fork_rng(devices=[]):  # the global RNG is as it was afterwards
        for root, part in parts.items():
            for name, module in _post_order(part, root):
                own = [p for p in module.parameters(recurse=False) if p.requires_grad]
                reset = getattr(module, "reset_parameters", None)
                if reset is None and own:
                    raise TypeError(
                        f"seed_by_name: {name} ({type(module).__name__}) owns trainable parameters but has no "
                        "reset_parameters(); its initial distribution is unknown, so it cannot be redrawn."
                    )
                if reset is None or not any(p.requires_grad for p in module.parameters()):
                    continue
                torch.manual_seed(derived_seed(seed, name))
                reset()
                if linear_init is not None and isinstance(module, nn.Linear):
                    linear_init(module)
                redrawn.append(name)
    return redrawn
