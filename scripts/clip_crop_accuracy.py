#!/usr/bin/env python
"""How well the frozen toy CLIP names ground-truth objects from their crops: the ceiling of the region ensemble.

Each object of each toy test scene is cut out as the region ensemble cuts a predicted mask (its box, blank-filled
outside the mask, resized to CLIP's input; ``mrovseg.model.ovseg.mask_prompt_clip``) and named by CLIP among the
world's object classes (background left out). Prints, per class and for base and novel classes, how many objects
were named right, and the most frequent confusions (BENCHMARKS.md, "The lab, eighth session").

    python scripts/clip_crop_accuracy.py --num-test 128 --split balanced
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

import hydra
import torch
from omegaconf import OmegaConf

from mrovseg.config import CONF_DIR
from mrovseg.data.toy_datamodule import ToyDataModule
from mrovseg.model.ovseg.mask_prompt_clip import MaskPromptCLIP


@torch.no_grad()
def crop_accuracy(num_test: int, split: str, seed: int = 0, template: str = "a photo of a {}.") -> dict:
    """``{"classes": {name: [right, total]}, "base": [right, total], "novel": [...], "confusions": [...]}``."""
    backbone = hydra.utils.instantiate(OmegaConf.load(CONF_DIR / "clip" / "toy.yaml"))
    data = ToyDataModule(seed=seed, split=split, num_test=num_test)
    info = data.eval_benchmarks[0]
    names, seen = info.class_names, set(info.seen_classes or [])
    text = backbone.encode_vocabulary(names, [template])
    region = MaskPromptCLIP(backbone, prompt_depth=0)
    right, total, confusions = collections.Counter(), collections.Counter(), collections.Counter()
    dataset = data.eval_dataset("test")
    for index in range(len(dataset)):
        sample = dataset[index]
        label = torch.as_tensor(sample["label"])
        classes = [c for c in label.unique().tolist() if c > 0]  # 0: background, -1: ignored
        if not classes:
            continue
        masks = torch.stack([label == c for c in classes])
        emb = region(
            backbone, sample["image"][None], masks, torch.zeros(len(classes), dtype=torch.long), False
        )
        predicted = ((emb @ text.T)[:, 1:].argmax(dim=1) + 1).tolist()
        for c, p in zip(classes, predicted):
            total[c] += 1
            right[c] += p == c
            if p != c:
                confusions[f"{names[c]} -> {names[p]}"] += 1

    def group(members: list[int]) -> list[int]:
        return [sum(right[c] for c in members), sum(total[c] for c in members)]

    return {
        "classes": {names[c]: [right[c], total[c]] for c in sorted(total)},
        "base": group([c for c in total if c in seen]),
        "novel": group([c for c in total if c not in seen]),
        "confusions": confusions.most_common(10),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-test", type=int, default=128, help="test scenes of the toy world")
    parser.add_argument("--split", default="balanced", help="the runs' data.split (random | balanced)")
    parser.add_argument("--seed", type=int, default=0, help="the world's data.seed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = crop_accuracy(args.num_test, args.split, args.seed)
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        return
    for part in ("base", "novel"):
        r, t = result[part]
        print(f"{part}: {r} / {t} objects named right ({100 * r / max(t, 1):.0f} %)")
    for name, (r, t) in result["classes"].items():
        print(f"  {name}: {r} / {t}")
    print("most frequent confusions:", ", ".join(f"{k} ({v})" for k, v in result["confusions"]))


if __name__ == "__main__":
    main()
