"""Error-analysis entry point: evaluates one checkpoint and explains its errors, per benchmark.

    python -m mrovseg.analyze ckpt_path=<file> [experiment=…] [eval.benchmarks=[ade150]] [data.root=<dir>]

The evaluation of :mod:`mrovseg.eval` (the same checkpoint loading, precision and benchmark selection, the
one test loop; ``metrics.json`` as there) with ``eval.analysis=true``: the model runs once over each
benchmark's images and ``analysis/<benchmark>/report.md`` is written beside PNG figures — per-class IoU,
the largest confusions, IoU by object size and the oracle breakdown (masks or recognition)
(:mod:`mrovseg.analysis`, ``docs/error-analysis.md``). Settings: ``analysis.*`` in ``conf/analyze.yaml``.
Needs matplotlib: ``pip install "mrovseg[analysis]"``.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, open_dict

from mrovseg.config import CONF_DIR
from mrovseg.eval import evaluate


def analyze(cfg: DictConfig) -> dict[str, Any]:
    """:func:`mrovseg.eval.evaluate` with the analysis switched on; returns the evaluation results."""
    with open_dict(cfg):
        cfg.eval.analysis = True
    return evaluate(cfg)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="analyze")
def main(cfg: DictConfig) -> float | None:
    results = analyze(cfg)
    values = [r["mIoU"] for r in results.values() if r.get("mIoU") is not None]
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    main()
