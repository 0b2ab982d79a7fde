"""One-off conversion of a *trusted* checkpoint that holds Python objects into one that loads safely.

    python -m mrovseg.training.checkpoint_convert IN.ckpt OUT.ckpt

mrovseg reads checkpoints with ``torch.load(weights_only=True)`` (:func:`~mrovseg.training.checkpoint.read_checkpoint`),
which refuses anything but tensors and plain data, because unpickling other objects can run code hidden
in the file. Checkpoints of ``mrovseg.train`` never need more. A file that does (custom callbacks, an
OmegaConf config in ``hyper_parameters``, ...) can be converted once, **if you trust it**: this loads it
with ``weights_only=False`` (its code runs), keeps tensors, numbers, strings, lists and dicts (OmegaConf
containers become plain ones), drops every other object with a warning naming its key, and writes ``OUT``,
which is then read back safely. ``OUT`` must not exist yet.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

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
    """Writes ``dst``: the tensors and plain data of the trusted checkpoint ``src``; returns the dropped keys.

    Raises:
        FileExistsError: ``dst`` exists (nothing is overwritten).
        ValueError: ``src`` holds no ``state_dict``.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if dst.exists():
        raise FileExistsError(f"{dst} exists; pass a new file name (nothing is overwritten).")
    ckpt = torch.load(src, map_location="cpu", weights_only=False)  # trusted by the caller: its code runs
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
        description="Convert a TRUSTED checkpoint that holds Python objects into one of tensors and plain "
        "data (loading IN runs whatever code it holds).",
    )
    parser.add_argument("src", help="the trusted checkpoint")
    parser.add_argument("dst", help="the converted checkpoint (a new file)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    dropped = convert_checkpoint(args.src, args.dst)
    print(f"wrote {args.dst} ({len(dropped)} object(s) dropped); it loads with weights_only=True.")


if __name__ == "__main__":
    main()
