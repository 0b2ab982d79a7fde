"""LightningDataModule for training on one benchmark and scoring several at once.

``BenchmarkDataModule(train_benchmark="coco_stuff", eval_benchmarks=["coco_stuff"])`` trains on COCO-Stuff-171;
``BenchmarkDataModule(train_benchmark=None, eval_benchmarks=["ade150", "ade847", "pc59", "pc459", "voc20"])``
is the evaluation module of the open-vocabulary benchmarks. Validation and test return one dataloader per
evaluation benchmark, in the order of :attr:`BenchmarkDataModule.eval_benchmarks`, each with its own
vocabulary (``BenchmarkInfo``); every benchmark's ignore value is already mapped to ``IGNORE_INDEX``.
Nothing touches the disk before :meth:`setup`, which raises clear errors for a missing or partial layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from mrovseg.constants import DEFAULT_EVAL_SHORT_SIDE
from mrovseg.data.benchmarks import BenchmarkInfo, get_benchmark
from mrovseg.data.datasets import SemanticSegDataset
from mrovseg.data.mess import benchmark_spec
from mrovseg.data.sampling import segmentation_loader, store_loader_settings
from mrovseg.data.transforms import EvalTransform, TrainTransform

__all__ = ["BenchmarkDataModule"]


class BenchmarkDataModule(L.LightningDataModule):
    """Training and evaluation data of the registered benchmarks.

    Args:
        root: Dataset root (the conf default is ``${oc.env:DETECTRON2_DATASETS,datasets}``).
        train_benchmark: Benchmark to train on, or None for an evaluation-only module.
        eval_benchmarks: Benchmarks served by ``val_dataloader()`` / ``test_dataloader()``, in order: the
            registry's or MESS datasets (:mod:`mrovseg.data.mess`, ``foodseg103``, ...).
        crop_size: Training crop, ``int`` or ``(height, width)``.
        base_size: Short side at scale 1.0 of the random resize; defaults to the crop side.
        scale_range: Range of the random resize factor.
        scale_relative_to_image: Scale each image's own size (the paper's wording) instead of a base short side.
        hflip_prob: Probability of a horizontal flip in training.
        photometric: Apply the photometric distortion in training.
        eval_short_side: Short side of evaluation images (labels keep their resolution).
        eval_max_long_side: Optional cap on the long side of evaluation images.
        batch_size: Training batch size (per process).
        eval_batch_size: Evaluation batch size; 1, since evaluation images differ in size.
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory for faster transfer to the GPU.
        persistent_workers: Keep workers alive between epochs (when ``num_workers > 0``).
        train_split: Split used for training.
        eval_split: Split used for validation and test.
        check_labels: Check label values against ``[0, K) ∪ {ignore}`` while loading.
        drop_last: Drop the last incomplete training batch.
    """

    def __init__(
        self,
        root: str | Path = "datasets",
        train_benchmark: str | None = "coco_stuff",
        eval_benchmarks: Sequence[str] = ("coco_stuff",),
        crop_size: int | Sequence[int] = 640,
        base_size: int | None = None,
        scale_range: Sequence[float] = (0.5, 2.0),
        scale_relative_to_image: bool = False,
        hflip_prob: float = 0.5,
        photometric: bool = True,
        eval_short_side: int = DEFAULT_EVAL_SHORT_SIDE,
        eval_max_long_side: int | None = None,
        batch_size: int = 8,
        eval_batch_size: int = 1,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = False,
        train_split: str = "train",
        eval_split: str = "val",
        check_labels: bool = True,
        drop_last: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False)
        self.root = Path(str(root)).expanduser()
        self.train_spec = get_benchmark(train_benchmark) if train_benchmark else None
        self.eval_specs = [benchmark_spec(name) for name in eval_benchmarks]  # the registry's or MESS's
        if len({s.name for s in self.eval_specs}) != len(self.eval_specs):
            raise ValueError(f"eval_benchmarks lists a benchmark twice: {list(eval_benchmarks)}")
        self.train_transform = TrainTransform(
            crop_size=tuple(crop_size) if not isinstance(crop_size, int) else crop_size,
            base_size=base_size,
            scale_range=tuple(scale_range),
            hflip_prob=hflip_prob,
            photometric=photometric,
            relative_to_image=scale_relative_to_image,
        )
        self.eval_transform = EvalTransform(eval_short_side, eval_max_long_side)
        store_loader_settings(
            self, batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
            pin_memory=pin_memory, persistent_workers=persistent_workers, train_split=train_split,
            eval_split=eval_split, drop_last=drop_last,
        )  # fmt: skip
        self.check_labels = check_labels
        self.train_dataset: SemanticSegDataset | None = None
        self.eval_datasets: list[SemanticSegDataset] = []

    @property
    def train_class_names(self) -> list[str]:
        """Training vocabulary (empty for an evaluation-only module)."""
        return list(self.train_spec.class_names) if self.train_spec else []

    @property
    def eval_benchmarks(self) -> list[BenchmarkInfo]:
        """One :class:`BenchmarkInfo` per evaluation dataloader, in dataloader order."""
        return [spec.info() for spec in self.eval_specs]

    def setup(self, stage: str | None = None) -> None:
        """Scans the dataset folders (raising ``DatasetLayoutError`` that names what is missing)."""
        if stage in (None, "fit") and self.train_spec is not None and self.train_dataset is None:
            self.train_dataset = SemanticSegDataset(
                self.root, self.train_spec, self.train_split, self.train_transform, self.check_labels
            )
        if stage in (None, "fit", "validate", "test") and not self.eval_datasets:
            self.eval_datasets = [
                SemanticSegDataset(self.root, spec, self.eval_split, self.eval_transform, self.check_labels)
                for spec in self.eval_specs
            ]

    def _loader(self, dataset: SemanticSegDataset, batch_size: int, train: bool) -> DataLoader:
        return segmentation_loader(self, dataset, batch_size, train, dataset.spec.name)

    def train_dataloader(self) -> DataLoader:
        if self.train_spec is None:
            raise RuntimeError("this BenchmarkDataModule is evaluation-only (train_benchmark=None)")
        if self.train_dataset is None:
            self.setup("fit")
        assert self.train_dataset is not None
        return self._loader(self.train_dataset, self.batch_size, train=True)

    def val_dataloader(self) -> list[DataLoader]:
        if not self.eval_datasets:
            self.setup("validate")
        return [self._loader(ds, self.eval_batch_size, train=False) for ds in self.eval_datasets]

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()
