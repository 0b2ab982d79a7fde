"""scripts/clip_crop_accuracy.py: the frozen toy CLIP naming ground-truth object crops."""

from __future__ import annotations

import importlib.util

import torch

from mrovseg.constants import REPO_ROOT
from mrovseg.data.toy_datamodule import ToyDataModule

spec = importlib.util.spec_from_file_location(
    "clip_crop_accuracy", REPO_ROOT / "scripts" / "clip_crop_accuracy.py"
)
clip_crop_accuracy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(clip_crop_accuracy)


def test_every_object_of_the_scenes_is_counted_once_in_its_group(capsys):
    result = clip_crop_accuracy.crop_accuracy(num_test=4, split="balanced")
    data = ToyDataModule(split="balanced", num_test=4)
    info = data.eval_benchmarks[0]
    expected: dict[str, int] = {}
    for i in range(4):
        for c in torch.as_tensor(data.eval_dataset("test")[i]["label"]).unique().tolist():
            if c > 0:
                expected[info.class_names[c]] = expected.get(info.class_names[c], 0) + 1
    assert {name: t for name, (_, t) in result["classes"].items()} == expected
    assert all(0 <= r <= t for r, t in result["classes"].values())
    seen = {info.class_names[c] for c in info.seen_classes}
    for part, members in (("base", seen), ("novel", set(expected) - seen)):
        rows = [v for k, v in result["classes"].items() if k in members]
        assert result[part] == [sum(r for r, _ in rows), sum(t for _, t in rows)]
    wrong = sum(t - r for r, t in result["classes"].values())
    assert sum(n for _, n in result["confusions"]) <= wrong
    clip_crop_accuracy.main(["--num-test", "2"])
    out = capsys.readouterr().out
    assert out.startswith("base: ") and "novel: " in out
