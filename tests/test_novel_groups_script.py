"""scripts/novel_groups.py: the group's and the other novel classes' means in collapsed and other runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mrovseg.constants import REPO_ROOT
from mrovseg.data.synthetic import ToyWorld

spec = importlib.util.spec_from_file_location("novel_groups", REPO_ROOT / "scripts" / "novel_groups.py")
novel_groups = importlib.util.module_from_spec(spec)
spec.loader.exec_module(novel_groups)


def _run(root: Path, seed: int, yellow: float, other: float, base: float = 60.0) -> None:
    world = ToyWorld()
    names = [world.class_names[k] for k in world.novel_classes]
    pc = {c: (yellow if c.startswith("yellow") else other) for c in names}
    novel = sum(pc.values()) / len(pc)
    run = root / f"seed_{seed}"
    run.mkdir(parents=True)
    toy = {"per_class_iou": pc, "novel_mIoU": novel, "base_mIoU": base}
    (run / "metrics.json").write_text(json.dumps({"toy": toy}))


def test_group_means_split_by_collapse(tmp_path: Path) -> None:
    _run(tmp_path / "a", 0, yellow=10.0, other=50.0)  # novel 30 / base 60 = 0.5: collapsed
    _run(tmp_path / "a", 1, yellow=60.0, other=50.0)  # 55 / 60: not
    _run(tmp_path / "b", 0, yellow=50.0, other=40.0)  # 45 / 60 = 0.75: not
    out = novel_groups.group_table([tmp_path / "a", tmp_path / "b"], "yellow")
    assert out["group"] == ["yellow circle", "yellow square", "yellow triangle"]
    assert out["runs"] == 3 and out["num_collapsed"] == 1
    assert out["collapsed"] == {"group_mean": 10.0, "others_mean": 50.0}
    assert out["rest"] == {"group_mean": 55.0, "others_mean": 45.0}
    # novel mIoU per run 30 / 55 / 45 against the yellow means 10 / 60 / 50 (Pearson, by hand)
    dn, dy = [30 - 130 / 3, 55 - 130 / 3, 45 - 130 / 3], [10 - 40, 60 - 40, 50 - 40]
    r = sum(a * b for a, b in zip(dn, dy)) / (sum(a * a for a in dn) * sum(b * b for b in dy)) ** 0.5
    assert out["corr_group"] == pytest.approx(r)


def test_a_group_outside_the_novel_classes_is_refused(tmp_path: Path) -> None:
    _run(tmp_path / "a", 0, yellow=10.0, other=50.0)
    with pytest.raises(ValueError, match="'green' must name some but not all novel classes"):
        novel_groups.group_table([tmp_path / "a"], "green")
    with pytest.raises(FileNotFoundError, match="no seed_"):
        novel_groups.group_table([tmp_path / "missing"], "yellow")


def test_the_balanced_split_has_its_own_novel_classes(tmp_path: Path) -> None:
    _run(tmp_path / "a", 0, yellow=10.0, other=50.0)  # per-class IoU of the random split's novel classes
    with pytest.raises(ValueError, match=r"a/seed_0/metrics.json has no IoU for \['red ring', 'green cross'"):
        novel_groups.group_table([tmp_path / "a"], "yellow", split="balanced")
    world = ToyWorld(split="balanced")
    names = [world.class_names[k] for k in world.novel_classes]
    run = tmp_path / "b" / "seed_0"
    run.mkdir(parents=True)
    pc = {c: (20.0 if c.startswith("yellow") else 60.0) for c in names}
    toy = {"per_class_iou": pc, "novel_mIoU": sum(pc.values()) / 6, "base_mIoU": 70.0}
    (run / "metrics.json").write_text(json.dumps({"toy": toy}))
    out = novel_groups.group_table([tmp_path / "b"], "yellow", split="balanced")
    assert out["group"] == ["yellow cross"] and len(out["others"]) == 5
    assert out["rest"] == {"group_mean": 20.0, "others_mean": 60.0}
