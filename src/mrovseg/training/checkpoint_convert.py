"""One-off conversion of a checkpoint that holds Python objects into one that loads safely.

    python -m mrovseg.training.checkpoint_convert IN.ckpt OUT.ckpt

mrovseg reads checkpoints with ``torch.load(weights_only=True)`` (:func:`~mrovseg.training.checkpoint.read_checkpoint`),
which refuses anything but tensors and plain data, because unpickling other objects can run code hidden
in the file. Checkpoints of ``mrovseg.train`` never need more. A file that does (custom callbacks, an
OmegaConf config in ``hyper_parameters``, ...) can be converted once: this reads it with an unpickler
that **runs no code from the file** — it builds only torch's safe types (the ``weights_only`` allow-list),
plain containers, numpy arrays and OmegaConf / argparse containers, and every other object the pickle names
(a callback, a function such as ``exec``) becomes an inert placeholder that is never called — then keeps
tensors, numbers, strings, lists and dicts (OmegaConf containers become plain ones), drops the rest with a
warning naming its key, and writes ``OUT``, which is then read back with ``weights_only=True``. ``OUT``
must not exist yet.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mrovseg.files import atomic_write
from mrovseg.training.checkpoint import read_checkpoint

__all__ = ["convert_checkpoint", "plain_data"]

log = logging.getLogger(__name__)

_DROP = object()  # marks a dropped value
#: Types kept as they are (exact types: a subclass, e.g. an ``IntEnum``, would not load).
_PLAIN = (
    str,
    int,
    float,
    bool,
    type(None),
    torch.Tensor,
    torch.nn.Parameter,
    torch.dtype,
    torch.device,
    torch.Size,
)


class Placeholder:
    """What an object of a class outside the allow-list becomes: built and filled without running any of
    its code (the arguments and state the pickle gives are ignored)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return self


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """``(module, name) → object`` the converting unpickler may build: torch's ``weights_only`` allow-list
    and registered safe globals, plus the library containers a checkpoint's metadata holds."""
    import collections
    import typing

    from omegaconf import DictConfig, ListConfig, nodes
    from omegaconf.base import ContainerMetadata, Metadata

    allowed: ClassVar[dict[tuple[str, str], Any]] = {}
    try:  # torch's own allow-list of weights_only=True (tensors, storages, dtypes, OrderedDict, ...)
        from torch._weights_only_unpickler import _get_allowed_globals

        for qualified, obj in _get_allowed_globals().items():
            module, _, name = qualified.rpartition(".")
            allowed[(module, name)] = obj
    except (ImportError, AttributeError):  # pragma: no cover - a torch without it: the types below
        pass
    for obj in torch.serialization.get_safe_globals():
        if isinstance(obj, type):
            allowed[(obj.__module__, obj.__qualname__)] = obj
    library = [
        DictConfig,
        ListConfig,
        ContainerMetadata,
        Metadata,
        argparse.Namespace,
        collections.OrderedDict,
    ]
    library += [
        getattr(nodes, n) for n in ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode")
    ]
    library += [dict, list, tuple, set, frozenset, int, float, str, bool, bytes, complex, slice]
    for obj in library:
        allowed[(obj.__module__, obj.__qualname__)] = obj
    allowed[("typing", "Any")] = typing.Any
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("numpy.core.multiarray", "_reconstruct")] = np.core.multiarray._reconstruct
    allowed[("numpy._core.multiarray", "_reconstruct")] = np.core.multiarray._reconstruct
    allowed[("numpy.core.multiarray", "scalar")] = np.core.multiarray.scalar
    allowed[("numpy._core.multiarray", "scalar")] = np.core.multiarray.scalar
    return allowed


class _InertUnpickler(pickle.Unpickler):
    """Builds the allowed globals; any other global the pickle names becomes a :class:`Placeholder`
    subclass carrying its name, so no function or class of the file's choosing is ever called."""

    allowed: ClassVar[dict[tuple[str, str], Any]] = {}

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is not None:
            return obj
        return type(name.replace(".", "_"), (Placeholder,), {"__module__": module, "__qualname__": name})


def _inert_pickle_module() -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose unpickler runs no code from the file."""
    module = types.ModuleType("mrovseg_inert_pickle")
    module.__dict__.update({k: getattr(pickle, k) for k in ("load", "loads", "dump", "dumps", "Pickler")})
    module.Unpickler = type("Unpickler", (_InertUnpickler,), {"allowed": _allowed_globals()})
    return module


def plain_data(node: Any, key: str = "", dropped: list[str] | None = None) -> Any:
    """``node`` with only what ``weights_only=True`` reads; the keys of dropped objects go into ``dropped``."""
    from omegaconf import OmegaConf

    dropped = dropped if dropped is not None else []
    if OmegaConf.is_config(node):
        node = OmegaConf.to_container(node, resolve=False)
    elif isinstance(node, argparse.Namespace):
        node = vars(node)
    elif isinstance(node, np.generic):
        node = node.item()
    elif isinstance(node, np.ndarray) and node.dtype.kind in "biuf":
        node = torch.from_numpy(node.copy())
    if isinstance(node, Placeholder) or (isinstance(node, type) and issubclass(node, Placeholder)):
        dropped.append(f"{key} ({type(node).__module__}.{type(node).__qualname__}, not built)")
        return _DROP
    if type(node) in _PLAIN:
        return node
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if not isinstance(k, (str, int, float, bool, type(None))):
                dropped.append(f"{key}[{k!r}]")
                continue
            value = plain_data(v, f"{key}.{k}" if key else str(k), dropped)
            if value is not _DROP:
                out[k] = value
        return out
    if isinstance(node, (list, tuple)):
        items = [plain_data(v, f"{key}[{i}]", dropped) for i, v in enumerate(node)]
        items = [v for v in items if v is not _DROP]
        return items if isinstance(node, list) else tuple(items)
    dropped.append(f"{key} ({type(node).__module__}.{type(node).__qualname__})")
    return _DROP


def convert_checkpoint(src: str | Path, dst: str | Path) -> list[str]:
    """Writes ``dst``: the tensors and plain data of the checkpoint ``src``; returns the dropped keys.

    Raises:
        FileExistsError: ``dst`` exists (nothing is overwritten).
        ValueError: ``src`` holds no ``state_dict``.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if dst.exists():
        raise FileExistsError(f"{dst} exists; pass a new file name (nothing is overwritten).")
    # not torch's weights_only mode, to use our own unpickler: it builds allow-listed types and placeholders
    ckpt = torch.load(src, map_location="cpu", weights_only=False, pickle_module=_inert_pickle_module())
    dropped: list[str] = []
    clean = plain_data(ckpt, dropped=dropped)
    if not isinstance(clean, dict) or "state_dict" not in clean:
        raise ValueError(f"{src} is not a Lightning checkpoint (no 'state_dict').")
    for key in dropped:
        log.warning("Dropped %s: not plain data.", key)
    dst.parent.mkdir(parents=True, exist_ok=True)

    def write(path: Path) -> None:
        torch.save(clean, path)
        read_checkpoint(path)  # it reads back with weights_only=True, else nothing is left behind

    atomic_write(dst, write)
    return dropped


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mrovseg.training.checkpoint_convert",
        description="Convert a checkpoint that holds Python objects into one of tensors and plain data "
        "(IN is read without running any code it holds; its other objects are dropped).",
    )
    parser.add_argument("src", help="the checkpoint to convert")
    parser.add_argument("dst", help="the converted checkpoint (a new file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    dropped = convert_checkpoint(args.src, args.dst)
    print(f"wrote {args.dst} ({len(dropped)} object(s) dropped); it loads with weights_only=True.")


if __name__ == "__main__":
    main()
