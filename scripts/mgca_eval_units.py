#!/usr/bin/env python
"""Scores an MGCA checkpoint on the toy test scenes with AND without semantic units in one pass.

Units act at inference only, so both variants share every CLIP and decoder computation: each
window's score map is ``[unit scores ; per-pixel scores]`` (2K channels) through the same
``sliding_window`` (a per-channel average, so the halves are exactly what ``mrovseg.eval`` computes
with ``model.units.enabled=true`` / ``false``), then ``upsample_argmax`` and ``SegMetrics`` per half.
Writes ``<out>/units/metrics.json`` and ``<out>/plain/metrics.json`` (``{"toy": {...}}``).

    OMP_NUM_THREADS=1 python scripts/mgca_eval_units.py --ckpt <run>/checkpoints/last.ckpt --out <dir>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mrovseg.data.toy_datamodule import ToyDataModule
from mrovseg.model.inference import sliding_window, upsample_argmax
from mrovseg.model.mgca.units import semantic_units, unit_scores
from mrovseg.training.checkpoint import load_module
from mrovseg.training.metrics import result_entry
from mrovseg.training.trainer import write_metrics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num-test", type=int, default=256)
    args = p.parse_args()
    module = load_module(args.ckpt)
    model, hp, u = module.model, module.hparams, module.model.units
    dm = ToyDataModule(num_test=args.num_test)
    bench = dm.eval_benchmarks[0]
    text = module.text_embeddings(bench.class_names)
    k = len(bench.class_names)
    merge = None if u["merge_threshold"] is None else float(u["merge_threshold"])

    def both(windows: torch.Tensor) -> torch.Tensor:
        emb, _ = model.embeddings(windows)
        plain = model.pixel_scores(emb, text)
        units = torch.stack(
            [
                unit_scores(
                    s,
                    semantic_units(e, int(u["stride"]), int(u["iters"]), float(u["compactness"]), merge),
                    e,
                    float(u["min_coherence"]),
                )
                for e, s in zip(emb, plain)
            ]
        )
        return torch.cat([units, plain], dim=1)

    metrics = {}
    ds = dm.eval_dataset("test")
    with torch.inference_mode():
        for i in range(len(ds)):
            sample = ds[i]
            scores = sliding_window(both, sample["image"], hp.window, hp.window_overlap, hp.window_batch)
            label = sample["label"]
            regions = {name: r[None] for name, r in sample["regions"].items()}
            for name, part in (("units", scores[:k]), ("plain", scores[k:])):
                if name not in metrics:
                    metrics[name] = module._new_metric(bench, tuple(sorted(regions)))
                pred = upsample_argmax(part, tuple(label.shape))
                metrics[name].update(pred[None], label[None], regions)
    for name, metric in metrics.items():
        entry = result_entry(metric.compute(), bench.class_names)
        write_metrics({bench.name: entry}, args.out / name / "metrics.json")


if __name__ == "__main__":
    main()
