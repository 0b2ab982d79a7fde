"""Datamodules of image–caption pairs for text-supervised (MGCA-style) training; no mask is read in training.

* :class:`ToyCaptionDataModule`: the toy world's training scenes with their captions
  (:func:`mrovseg.data.captions.toy_caption` of the objects at least ``min_visible`` visible), nouns by
  the one noun rule of :func:`mrovseg.data.captions.extract_nouns` (on toy captions it gives exactly the
  class names listed, as matching them would). By default objects of *novel* classes are
  left out of captions (``caption_novel=False``), as they are unlabelled in the mask-supervised
  default experiment, so "novel" means the same thing in both. Validation/test are the toy
  benchmark of :class:`mrovseg.data.toy_datamodule.ToyDataModule` (with labels, for scoring only).
* :class:`CaptionDataModule`: real captions (CSV/TSV, image folder, img2dataset webdataset shards;
  :mod:`mrovseg.data.caption_datasets`), evaluated on registered benchmarks through an
  evaluation-only :class:`mrovseg.data.datamodule.BenchmarkDataModule`.

Training batches are ``{"image": (B, 3, S, S), "caption": [str], "nouns": [[str]], "name": [str]}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from mrovseg.data.caption_datasets import RandomResizedCrop, caption_dataset, make_noun_fn
from mrovseg.data.captions import extract_nouns, toy_caption
from mrovseg.data.synthetic import SceneConfig, ToyWorld, render_scene, scene_rng
from mrovseg.data.toy_datamodule import ToyDataModule

__all__ = ["CaptionDataModule", "ToyCaptionDataModule", "ToyCaptionDataset", "collate_captions"]


def collate_captions(samples: list[dict]) -> dict[str, Any]:
    """Stacks images; keeps captions, noun lists and names as lists."""
    return {
        "image": torch.stack([s["image"] for s in samples]),
        "caption": [s["caption"] for s in samples],
        "nouns": [list(s["nouns"]) for s in samples],
        "name": [s["name"] for s in samples],
    }


class ToyCaptionDataset(Dataset):
    """Toy training scenes with captions (no label in the sample).

    Args:
        world: vocabulary and split.
        cfg: scene layout.
        seed: world seed.
        length: number of scenes.
        caption_novel: mention objects of novel classes in captions.
        min_visible: objects with a smaller visible fraction are not mentioned.
    """

    def __init__(
        self,
        world: ToyWorld,
        cfg: SceneConfig,
        seed: int,
        length: int,
        caption_novel: bool = False,
        min_visible: float = 0.5,
    ):
        self.world, self.cfg, self.seed, self.length = world, cfg, seed, length
        self.caption_novel, self.min_visible = caption_novel, min_visible

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        scene = render_scene(scene_rng(self.seed, "train", index), self.world, self.cfg)
        novel = set(self.world.novel_classes)
        names = [
            self.world.class_names[o.class_id]
            for o, v in zip(scene.objects, scene.visible)
            if v >= self.min_visible and (self.caption_novel or o.class_id not in novel)
        ]
        caption = toy_caption(sorted(set(names)), scene_rng(self.seed, "train-caption", index))
        image = torch.from_numpy(np.ascontiguousarray(scene.image.transpose(2, 0, 1)))
        return {
            "image": image,
            "caption": caption,
            "nouns": extract_nouns(caption),
            "name": f"toy_train_{index:05d}",
        }


class ToyCaptionDataModule(ToyDataModule):
    """The toy world with captions for training and labelled scenes for evaluation.

    Args:
        caption_novel: mention novel-class objects in captions (default False: they stay unnamed).
        min_visible: visible fraction an object needs to be mentioned.
        **kwargs: :class:`ToyDataModule` options.
    """

    def __init__(self, caption_novel: bool = False, min_visible: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.caption_novel, self.min_visible = caption_novel, min_visible

    @property
    def train_class_names(self) -> None:
        """No training vocabulary: the nouns come from the captions."""
        return None

    def train_dataset(self) -> ToyCaptionDataset:  # type: ignore[override]
        return ToyCaptionDataset(
            self.world, self.train_cfg, self.seed, self.num_train, self.caption_novel, self.min_visible
        )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_dataset(),
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate_captions,
        )


class CaptionDataModule(L.LightningDataModule):
    """Real image–caption training data; evaluation on registered segmentation benchmarks.

    Args:
        train_source: CSV/TSV file, image folder, ``.tar`` shard or folder of shards.
        eval_benchmarks: benchmarks served for validation/test (e.g. ``["voc20", "pc59"]``).
        root: dataset root of the benchmarks.
        crop_size: training crop side.
        scale: area range of the random resized crop.
        image_col: image column of a CSV/TSV.
        caption_col: caption column of a CSV/TSV.
        vocabulary_file: one phrase per line: nouns are matched against it; None: the noun-phrase rule.
        max_nouns: nouns kept per caption.
        batch_size: training batch size.
        num_workers: dataloader workers.
        eval_short_side: short side of evaluation images.
    """

    def __init__(
        self,
        train_source: str,
        eval_benchmarks: Sequence[str] = ("voc20",),
        root: str = "datasets",
        crop_size: int = 224,
        scale: Sequence[float] = (0.5, 1.0),
        image_col: str = "filepath",
        caption_col: str = "title",
        vocabulary_file: str | None = None,
        max_nouns: int | None = 8,
        batch_size: int = 64,
        num_workers: int = 8,
        eval_short_side: int = 448,
    ) -> None:
        super().__init__()
        from mrovseg.data.datamodule import BenchmarkDataModule

        self.save_hyperparameters(logger=False)
        self.eval_dm = BenchmarkDataModule(
            root=root,
            train_benchmark=None,
            eval_benchmarks=list(eval_benchmarks),
            eval_short_side=eval_short_side,
            num_workers=num_workers,
        )
        self.vocabulary = None
        if vocabulary_file is not None:
            path = Path(vocabulary_file)
            if not path.is_file():
                raise FileNotFoundError(f"vocabulary_file {path} not found (one phrase per line expected).")
            self.vocabulary = [
                ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()
            ]
        self._train: Dataset | IterableDataset | None = None

    @property
    def train_class_names(self) -> None:
        return None

    @property
    def eval_benchmarks(self):
        return self.eval_dm.eval_benchmarks

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if stage in (None, "fit") and self._train is None:
            nouns = make_noun_fn(self.vocabulary, max_nouns=hp.max_nouns)
            self._train = caption_dataset(
                hp.train_source,
                RandomResizedCrop(hp.crop_size, hp.scale),
                nouns,
                hp.image_col,
                hp.caption_col,
            )
        self.eval_dm.setup(stage)

    def train_dataloader(self) -> DataLoader:
        assert self._train is not None, "call setup('fit') first"
        iterable = isinstance(self._train, IterableDataset)
        return DataLoader(
            self._train,
            batch_size=self.hparams.batch_size,
            shuffle=not iterable,
            drop_last=True,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            collate_fn=collate_captions,
        )

    def val_dataloader(self):
        return self.eval_dm.val_dataloader()

    def test_dataloader(self):
        return self.eval_dm.test_dataloader()
