"""The default experiment's data: the procedural open-vocabulary world of :mod:`mrovseg.data.synthetic`.

Training scenes are 64² crops (the "high" resolution; the toy CLIP sees 32², the paper's 640/320
ratio) whose labels are already remapped to the *base* vocabulary: ``train_class_names`` lists the
base class names (``"background"`` first) and label ``i`` means ``train_class_names[i]``; pixels of
novel classes are ``IGNORE_INDEX``. Novel objects still appear in training images, unlabelled.

Evaluation scenes are larger (default 96×128, same pixel scale as training, so a model with a 64²
train crop covers them with overlapping sliding windows) and labelled with all K = C·S + 1 class
ids of the world (31 by default); the single benchmark ``"toy"`` lists every class and marks the
base ones as seen, for base/novel/hIoU. Every sample carries ``regions["small"]`` (see
:func:`mrovseg.data.synthetic.small_region`) for small-object IoU.

Scenes are rendered on the fly in ``__getitem__``, deterministically from ``(seed, split, index)``:
a 64² scene takes ~1.2 ms on the 2-core box, 8 per training step, ~24 s of a 2,500-step run (7 % of it).
A scene does not change between epochs, so the training set keeps what it rendered (``cache_train``,
~300 MB more peak memory for 4,096 scenes; labels kept as int16) and renders each scene once per run; the
samples are the same tensors either way (tests/data/test_synthetic.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.data.sampling import eval_loader, eval_sampler, train_loader, trainer_replicas
from mrovseg.data.synthetic import SceneConfig, ToyWorld, render_scene, scene_rng, to_sample
from mrovseg.data.transforms import resize_short_side

__all__ = ["ToyDataModule", "ToyDataset"]


class ToyDataset(Dataset):
    """``length`` scenes of one split, rendered on demand.

    Args:
        world: Vocabulary and split.
        cfg: Scene layout and rendering.
        seed: World seed.
        split: Split name (part of every scene's seed).
        length: Number of scenes.
        label_map: Optional lookup table applied to the world's class ids (e.g. to base indices).
        short_side: Resize the image so its short side is this (the label keeps its size); None keeps it.
        cache: Keep every rendered scene in memory and serve it again on the next epoch (the same values).
    """

    def __init__(
        self,
        world: ToyWorld,
        cfg: SceneConfig,
        seed: int,
        split: str,
        length: int,
        label_map: np.ndarray | None = None,
        short_side: int | None = None,
        cache: bool = False,
    ) -> None:
        self.world, self.cfg, self.seed, self.split, self.length = world, cfg, seed, split, length
        self.label_map = label_map
        self.short_side = short_side
        self._cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        if (
            self._cache is not None and index in self._cache
        ):  # the collate stacks copies: the kept tensors stay
            kept = self._cache[index]
            return {**kept, "label": kept["label"].long(), "regions": dict(kept["regions"])}
        scene = render_scene(scene_rng(self.seed, self.split, index), self.world, self.cfg)
        if self.label_map is not None:
            scene.label = self.label_map[scene.label]
        if self.short_side is not None:
            scene.image = resize_short_side(scene.image, self.short_side)
        sample = to_sample(scene, f"toy_{self.split}_{index:05d}")
        if self._cache is not None:  # labels kept as int16 (class ids and IGNORE_INDEX = -1 fit)
            self._cache[index] = {
                **sample,
                "label": sample["label"].short(),
                "regions": dict(sample["regions"]),
            }
        return sample


class ToyDataModule(L.LightningDataModule):
    """Train on the base classes of the toy world, evaluate on all of them.

    Args:
        seed: World seed (scenes of every split derive from it).
        split_seed: Seed of the base/novel split.
        split: ``"random"`` or ``"balanced"`` (novel classes spread evenly over colours and shapes; ToyWorld).
        num_colours: Colours in the vocabulary (≤ 8).
        num_shapes: Shapes in the vocabulary (≤ 7).
        num_novel: Object classes held out of training.
        num_train: Training scenes per epoch.
        num_val: Validation scenes.
        num_test: Test scenes.
        train_size: Side of the square training scenes (the train crop).
        eval_size: ``(height, width)`` of evaluation scenes.
        eval_short_side: Short side evaluation images are resized to; None keeps the rendered size.
        num_objects: Object-count range of training scenes.
        eval_num_objects: Object-count range of evaluation scenes.
        diameter_range: Object diameters in pixels (all splits; log-uniform).
        small_diameter: Objects with diameter ≤ this are small.
        small_margin: Dilation of the small-object region in pixels.
        noise_std: Gaussian pixel noise.
        batch_size: Training batch size.
        num_workers: DataLoader worker processes.
        order_seed: Seed of the training data order alone (a lab tool to split the seed spread
            into initial weights vs data order); None: the order follows the run's ``seed``.
        cache_train: Render each training scene once and keep it (same samples, ~16 s less per default run).
    """

    #: The benchmarks this datamodule serves whatever the config asks (``eval.benchmarks`` is checked
    #: against it): its own world.
    fixed_benchmarks = ("toy",)

    def __init__(
        self,
        seed: int = 0,
        split_seed: int = 0,
        split: str = "random",
        num_colours: int = 6,
        num_shapes: int = 5,
        num_novel: int = 6,
        num_train: int = 4096,
        num_val: int = 64,
        num_test: int = 256,
        train_size: int = 64,
        eval_size: Sequence[int] = (96, 128),
        eval_short_side: int | None = None,
        num_objects: Sequence[int] = (1, 4),
        eval_num_objects: Sequence[int] = (2, 10),
        diameter_range: Sequence[float] = (5.0, 32.0),
        small_diameter: float = 8.0,
        small_margin: int = 2,
        noise_std: float = 0.04,
        batch_size: int = 8,
        num_workers: int = 0,
        order_seed: int | None = None,
        cache_train: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.seed = seed
        self.order_seed = order_seed
        self.world = ToyWorld(num_colours, num_shapes, num_novel, split_seed, split)
        common = {
            "diameter_range": (float(diameter_range[0]), float(diameter_range[1])),
            "small_diameter": small_diameter,
            "small_margin": small_margin,
            "noise_std": noise_std,
        }
        self.train_cfg = SceneConfig(
            train_size, train_size, (int(num_objects[0]), int(num_objects[1])), **common
        )
        eval_objects = (int(eval_num_objects[0]), int(eval_num_objects[1]))
        self.eval_cfg = SceneConfig(int(eval_size[0]), int(eval_size[1]), eval_objects, **common)
        self.label_map = np.full(self.world.num_classes, IGNORE_INDEX, np.int64)
        self.label_map[self.world.base_classes] = np.arange(len(self.world.base_classes))
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.eval_short_side = eval_short_side
        self.batch_size, self.num_workers = batch_size, num_workers
        self.cache_train = cache_train

    @property
    def train_class_names(self) -> list[str]:
        """The base vocabulary; training label ``i`` is ``train_class_names[i]`` ("background" is 0)."""
        return [self.world.class_names[k] for k in self.world.base_classes]

    @property
    def eval_benchmarks(self) -> list[BenchmarkInfo]:
        """One benchmark, ``"toy"``: every class of the world, the base ones seen."""
        return [BenchmarkInfo("toy", list(self.world.class_names), list(self.world.base_classes))]

    #: The training set's class; subclasses add to a sample (e.g. captions) through it and
    #: :meth:`train_dataset_kwargs`.
    train_dataset_class: type[ToyDataset] = ToyDataset

    def train_dataset_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :attr:`train_dataset_class` beyond the scenes' own."""
        return {"cache": self.cache_train}

    def train_dataset(self) -> ToyDataset:
        """Training scenes, labels remapped to base indices (novel pixels ignored)."""
        args = (self.world, self.train_cfg, self.seed, "train", self.num_train, self.label_map)
        return self.train_dataset_class(*args, **self.train_dataset_kwargs())

    def eval_dataset(self, split: str) -> ToyDataset:
        """Evaluation scenes of ``split`` (``"val"`` or ``"test"``) with the world's class ids."""
        length = self.num_val if split == "val" else self.num_test
        return ToyDataset(
            self.world, self.eval_cfg, self.seed, split, length, short_side=self.eval_short_side
        )

    def _loader(self, dataset: ToyDataset, batch_size: int, train: bool) -> DataLoader:
        workers = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        if train:  # shuffled as shuffle=True does; a resumed run continues the epoch (data/sampling.py)
            return train_loader(self, dataset, batch_size, self.order_seed, drop_last=True, **workers)
        sampler = eval_sampler(dataset, *trainer_replicas(self.trainer), name="toy")
        return eval_loader(dataset, batch_size, sampler, **workers)  # validating draws no global RNG

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset(), self.batch_size, train=True)

    def val_dataloader(self) -> list[DataLoader]:
        return [self._loader(self.eval_dataset("val"), 1, train=False)]

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(self.eval_dataset("test"), 1, train=False)]
