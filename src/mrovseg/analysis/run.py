"""What the evaluation entry point calls for ``eval.analysis=true``: a collector before the test loop,
the reports after it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mrovseg.analysis.collect import AnalysisCollector, AnalysisOptions


def analysis_callbacks(cfg: DictConfig) -> list[AnalysisCollector]:
    """``[collector]`` when ``eval.analysis`` is true (options from ``cfg.analysis``), else ``[]``.

    Checks the options and that matplotlib is installed before the model is run.
    """
    if not cfg.get("eval", {}).get("analysis"):
        return []
    from mrovseg.analysis.figures import require_matplotlib

    require_matplotlib()
    node = cfg.get("analysis")
    options = AnalysisOptions.from_config(
        OmegaConf.to_container(node, resolve=True) if node is not None else None
    )
    return [AnalysisCollector(options)]


@rank_zero_only
def write_analysis(
    callbacks: list[AnalysisCollector],
    results: Mapping[str, Mapping[str, Any]],
    out_dir: Path,
    model: Any,
    checkpoint: str | None,
) -> None:
    """Writes ``out_dir/<benchmark>/report.md`` and its figures for every collector of
    :func:`analysis_callbacks` (none: nothing), and prints where."""
    from mrovseg.analysis.report import write_reports

    name = f"{type(model).__module__}.{type(model).__qualname__}"
    for collector in callbacks:
        for path in write_reports(collector.analyses, results, out_dir, name, checkpoint):
            print(f"analysis written to {path}")
