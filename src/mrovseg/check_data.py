"""Dataset check entry point: ``python -m mrovseg.check_data data=custom data.root=DIR [preview=N]``.

Also installed as the console script ``mrovseg-check-data``. Prints every problem of a custom
dataset (:mod:`mrovseg.data.check`) with the per-class pixel-share table, writes ``N`` label
overlays under ``<run dir>/preview/`` with ``preview=N`` (``--preview N`` is accepted too), and
exits with status 1 when it found errors. ``full=false`` runs only the fast part, the one that
training runs at start (:func:`mrovseg.training.preflight.check_before_training`).
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from mrovseg.config import CONF_DIR

log = logging.getLogger(__name__)


def run_check(cfg: DictConfig) -> int:
    """Checks the configured dataset, prints the report, writes previews; returns the error count.

    Reads the ``data`` config without instantiating the datamodule (no torch/Lightning import).
    """
    from pathlib import Path

    from mrovseg.data.check import check_dataset
    from mrovseg.data.preview import write_previews

    data = cfg.data
    needed = ("root", "train_split", "eval_split")
    if any(key not in data for key in needed):  # a dataset laid out as data=custom describes it
        raise ValueError(
            f"check_data checks datasets laid out as data=custom (a data config with {', '.join(needed)}); "
            f"data={data.get('_target_')} has no {', '.join(k for k in needed if k not in data)}."
        )
    splits = list(cfg.splits) if cfg.get("splits") else [data.train_split, data.eval_split]
    batch = int(data.batch_size) if data.drop_last else None
    report = check_dataset(
        data.root, splits, full=bool(cfg.full), batch_size=batch, train_split=data.train_split
    )
    print(report.text())
    if cfg.preview:
        pairs = [(s, stem, i, lab) for s, files in report.splits.items() for stem, i, lab in files.pairs]
        written = write_previews(report.layout, pairs, int(cfg.preview), Path(cfg.preview_dir))
        print(f"{len(written)} preview(s) written to {cfg.preview_dir}")
    return len(report.errors)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="check_data")
def _hydra_main(cfg: DictConfig) -> None:
    if run_check(cfg):
        raise SystemExit(1)


def main() -> None:
    """Console script ``mrovseg-check-data``: Hydra overrides, plus ``--preview N`` as ``preview=N``."""
    args = sys.argv[1:]
    rewritten: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--preview" and i + 1 < len(args):
            rewritten.append(f"preview={args[i + 1]}")
            i += 2
            continue
        rewritten.append(f"preview={arg.split('=', 1)[1]}" if arg.startswith("--preview=") else arg)
        i += 1
    sys.argv[1:] = rewritten
    _hydra_main()


if __name__ == "__main__":
    main()
