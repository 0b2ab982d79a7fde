"""A sample custom dataset drawn from the toy world (``prepare_custom.py toy``).

Writes scenes of :mod:`mrovseg.data.synthetic` in the custom layout: lossless PNG images,
``uint8`` PNG labels holding the world's class ids, ``classes.txt`` with the world's 31 names
("background", "red circle", ...) and a ``dataset.yaml`` listing the world's novel classes, so
``experiment=toy data=custom`` trains on the base classes and reports base/novel/hIoU, the
setting of ``experiment=toy``. It is the worked example of README "Your own dataset".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from mrovseg.data.prepare.common import PrepareReport
from mrovseg.data.prepare.custom_common import save_label, write_classes
from mrovseg.data.synthetic import SceneConfig, ToyWorld, render_scene, scene_rng

__all__ = ["prepare_toy"]


def prepare_toy(
    out: Path,
    num_train: int = 64,
    num_val: int = 16,
    seed: int = 0,
    train_size: int = 64,
    eval_size: Sequence[int] = (96, 128),
    num_novel: int = 6,
) -> PrepareReport:
    """Renders ``num_train`` training and ``num_val`` validation scenes into ``out``.

    Args:
        out: The dataset folder to write.
        num_train: Training scenes (``train_size``², 1–4 objects, as the toy datamodule's).
        num_val: Validation scenes (``eval_size``, 2–10 objects).
        seed: World seed (the scenes equal ``ToyDataModule(seed=seed)``'s of the same index).
        train_size: Side of the training scenes.
        eval_size: ``(height, width)`` of the validation scenes.
        num_novel: Object classes listed as ``novel`` in ``dataset.yaml``.
    """
    world = ToyWorld(num_novel=num_novel)
    write_classes(out, world.class_names)
    novel = [world.class_names[k] for k in world.novel_classes]
    (out / "dataset.yaml").write_text(yaml.safe_dump({"novel": novel}, sort_keys=False), encoding="utf-8")
    report = PrepareReport("custom (toy world)", out)
    configs = {
        "train": (SceneConfig(train_size, train_size, (1, 4)), num_train),
        "val": (SceneConfig(int(eval_size[0]), int(eval_size[1]), (2, 10)), num_val),
    }
    for split, (cfg, count) in configs.items():
        for index in range(count):
            scene = render_scene(scene_rng(seed, split, index), world, cfg)
            stem = f"toy_{split}_{index:05d}"
            image = (scene.image * 255.0).round().astype(np.uint8)
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(out / "images" / split / f"{stem}.png")
            save_label(scene.label, out / "labels" / split / f"{stem}.png", world.num_classes)
        report.add_samples(split, count, out / "images" / split, out / "labels" / split)
    report.add("val", "novel classes", len(novel))
    return report
