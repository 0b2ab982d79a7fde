#!/usr/bin/env python
"""Which novel classes make a toy run's novel figure: a group of them (``--group yellow``) against the rest.

Reads ``<row>/seed_*/metrics.json`` of runs on the toy world (``scripts/seeds.py`` rows), takes the novel classes
of the split (``--split``, ``--split-seed``: as the runs' ``data.split``, ``data.split_seed``) and reports, over all distinct runs, the group's mean IoU and the other novel
classes' mean IoU in the runs whose novel/base ratio is below ``--collapse`` and in the others, and how each
correlates with the novel mIoU (BENCHMARKS.md, "The lab, fifth session").

    python scripts/novel_groups.py <lab>/default <lab>/before --group yellow
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mrovseg.data.synthetic import ToyWorld

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seeds import finished_runs, load_metrics  # scripts/seeds.py: a row's runs and their metrics


def group_table(
    rows: list[Path], group: str, split_seed: int = 0, collapse: float = 0.70, split: str = "random"
) -> dict:
    """Per-run means of the group's and the other novel classes' IoU, and the summary printed by :func:`main`."""
    world = ToyWorld(split_seed=split_seed, split=split)
    novel = [world.class_names[k] for k in world.novel_classes]
    inside = [c for c in novel if group in c.split()]
    outside = [c for c in novel if c not in inside]
    if not inside or not outside:
        raise ValueError(
            f"--group {group!r} must name some but not all novel classes of split {split_seed}: {novel}"
        )
    runs, seen = [], set()
    for row in rows:
        dirs = finished_runs(Path(row))
        if not dirs:
            raise FileNotFoundError(f"{row}: no seed_*/metrics.json (a scripts/seeds.py row was expected)")
        # a run shared by two rows (symlinked) counts once
        dirs = [d for d in dirs if d.resolve() not in seen]
        seen.update(d.resolve() for d in dirs)
        for d, m in zip(dirs, load_metrics(dirs, "toy"), strict=True):
            pc = m["per_class_iou"]
            if missing := [c for c in novel if c not in pc]:
                raise ValueError(
                    f"{d / 'metrics.json'} has no IoU for {missing} (novel in data.split={split}, "
                    f"split_seed={split_seed}): were the runs made on another split?"
                )
            runs.append((np.mean([pc[c] for c in inside]), np.mean([pc[c] for c in outside]),
                         m["novel_mIoU"] / m["base_mIoU"], m["novel_mIoU"]))  # fmt: skip
    a = np.array(runs)
    low = a[:, 2] < collapse
    out = {"group": inside, "others": outside, "runs": len(a), "num_collapsed": int(low.sum())}
    for name, sel in (("collapsed", low), ("rest", ~low)):
        if sel.any():
            out[name] = {"group_mean": float(a[sel, 0].mean()), "others_mean": float(a[sel, 1].mean())}
    if len(a) > 2:
        out["corr_group"] = float(np.corrcoef(a[:, 3], a[:, 0])[0, 1])
        out["corr_others"] = float(np.corrcoef(a[:, 3], a[:, 1])[0, 1])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", nargs="+", type=Path)
    p.add_argument("--group", required=True, help="a word of the class names (a colour or a shape)")
    p.add_argument("--split", choices=["random", "balanced"], default="random", help="the runs' data.split")
    p.add_argument("--split-seed", type=int, default=0, help="the runs' data.split_seed")
    p.add_argument("--collapse", type=float, default=0.70, help="novel/base below this is a collapsed run")
    args = p.parse_args()
    print(
        json.dumps(group_table(args.rows, args.group, args.split_seed, args.collapse, args.split), indent=1)
    )


if __name__ == "__main__":
    main()
