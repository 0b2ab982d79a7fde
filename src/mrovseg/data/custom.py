"""``data=custom``: train and evaluate on a user's own dataset (layout in :mod:`.custom_layout`).

``CustomDataModule(root=DIR)`` trains on ``images/train`` + ``labels/train`` and validates/tests on
``images/val`` + ``labels/val`` with the augmentation and evaluation resizing of the benchmarks
(:mod:`mrovseg.data.transforms`). The training vocabulary is the base classes
(``train_class_names``; novel pixels are ignored); the single evaluation benchmark (``name``,
default ``custom``) scores every class under the names of ``classes.txt``, with base/novel/hIoU
when ``dataset.yaml`` lists ``novel`` classes. Before any data is served, :meth:`setup` runs the
fast part of the dataset check and raises :class:`~mrovseg.data.check.DatasetCheckError` listing
every problem; a label value outside ``[0, K) ∪ {ignore}`` found while loading raises
:class:`~mrovseg.data.datasets.LabelValueError` naming the file, so none reaches the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkInfo
from mrovseg.data.check import CheckReport, DatasetCheckError, check_dataset, label_value_problems
from mrovseg.data.custom_layout import CustomLayout, read_layout
from mrovseg.data.datasets import LabelValueError, SemanticSegDataset, Transform
from mrovseg.data.sampling import segmentation_loader, store_loader_settings
from mrovseg.data.transforms import EvalTransform, TrainTransform

__all__ = ["CustomDataModule", "CustomSegDataset", "DatasetCheckError"]


class CustomSegDataset(SemanticSegDataset):
    """(image, label) pairs of one split of a custom dataset; samples as :class:`SemanticSegDataset`'s.

    Args:
        layout: The dataset's vocabulary and options.
        pairs: ``(stem, image, label)`` of the split (from :meth:`CustomLayout.pairs`).
        train: Map labels to the training vocabulary (novel classes ignored) instead of all classes.
        transform: Applied to ``(uint8 image, int32 label)``.
    """

    def __init__(
        self,
        layout: CustomLayout,
        pairs: Sequence[tuple[str, Path, Path]],
        train: bool,
        transform: Transform | None = None,
    ) -> None:
        self.layout = layout
        self.root = layout.root
        self.split = "train" if train else "val"
        self.transform = transform
        self.check_labels = True
        self.lut = layout.lut(train)
        self.names = layout.train_class_names if train else layout.class_names
        self.samples = [(image, label, stem) for stem, image, label in pairs]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def class_names(self) -> list[str]:
        return list(self.names)

    def _layout_hint(self) -> str:
        return f"check the dataset with `python -m mrovseg.check_data data=custom data.root={self.root}`"

    def _map_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        k = self.layout.num_raw_classes
        ignore = self.layout.ignore_for(raw.dtype)
        problems = label_value_problems(raw, k, ignore)
        if problems:
            listed = ", ".join(f"value {v} ({c} pixels)" for v, c in problems[:5])
            raise LabelValueError(
                f"label {path} holds {listed}, outside [0, {k}) ∪ {{{ignore}}} (classes.txt has {k} lines); "
                + self._layout_hint()
            )
        label = np.full(raw.shape, IGNORE_INDEX, np.int32)
        valid = raw != ignore
        label[valid] = self.lut[raw[valid].astype(np.int64)]
        return label


class CustomDataModule(L.LightningDataModule):
    """Training and evaluation data of one custom dataset (``experiment=<any> data=custom data.root=DIR``).

    Args:
        root: The dataset folder (``classes.txt``, ``images/``, ``labels/``, optional ``dataset.yaml``).
        name: Benchmark name in metrics (``val/<name>/mIoU``) and ``metrics.json``.
        crop_size: Training crop, ``int`` or ``(height, width)`` (the conf default follows
            ``module.window``: 640 for the CLIP experiments, 64 for ``experiment=toy``).
        base_size: Short side at scale 1.0 of the random resize; defaults to the crop side.
        scale_range: Range of the random resize factor.
        scale_relative_to_image: Scale each image's own size instead of a base short side.
        hflip_prob: Probability of a horizontal flip in training.
        photometric: Apply the photometric distortion in training.
        eval_short_side: Short side of evaluation images (labels keep their resolution); None keeps
            the stored size.
        eval_max_long_side: Optional cap on the long side of evaluation images.
        batch_size: Training batch size (per process).
        eval_batch_size: Evaluation batch size; 1, since evaluation images differ in size.
        num_workers: DataLoader worker processes.
        pin_memory: Pin host memory.
        persistent_workers: Keep workers alive between epochs (when ``num_workers > 0``).
        train_split: Folder name of the training split under ``images/`` and ``labels/``.
        eval_split: Folder name of the evaluation split.
        drop_last: Drop the last incomplete training batch.
        train_benchmark: Ignored (experiments written for the benchmarks, e.g. ``experiment=vitb16``,
            set it); the custom dataset is both training and evaluation set.
        eval_benchmarks: Ignored, as ``train_benchmark``.
    """

    def __init__(
        self,
        root: str | Path = "datasets/custom",
        name: str = "custom",
        crop_size: int | Sequence[int] = 640,
        base_size: int | None = None,
        scale_range: Sequence[float] = (0.5, 2.0),
        scale_relative_to_image: bool = False,
        hflip_prob: float = 0.5,
        photometric: bool = True,
        eval_short_side: int | None = 640,
        eval_max_long_side: int | None = None,
        batch_size: int = 8,
        eval_batch_size: int = 1,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = False,
        train_split: str = "train",
        eval_split: str = "val",
        drop_last: bool = True,
        train_benchmark: str | None = None,
        eval_benchmarks: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["train_benchmark", "eval_benchmarks"])
        self.root = Path(str(root)).expanduser()
        self.name = name
        self.train_transform = TrainTransform(
            crop_size=tuple(crop_size) if not isinstance(crop_size, int) else crop_size,
            base_size=base_size,
            scale_range=tuple(scale_range),
            hflip_prob=hflip_prob,
            photometric=photometric,
            relative_to_image=scale_relative_to_image,
        )
        self.eval_transform = EvalTransform(eval_short_side, eval_max_long_side) if eval_short_side else None
        store_loader_settings(
            self, batch_size=batch_size, eval_batch_size=eval_batch_size, num_workers=num_workers,
            pin_memory=pin_memory, persistent_workers=persistent_workers, train_split=train_split,
            eval_split=eval_split, drop_last=drop_last,
        )  # fmt: skip
        self._layout: CustomLayout | None = None
        self._checked: set[str] = set()
        self.train_dataset: CustomSegDataset | None = None
        self.eval_dataset: CustomSegDataset | None = None

    @property
    def layout(self) -> CustomLayout:
        """``classes.txt`` and ``dataset.yaml``, read once (problems are reported by :meth:`check`)."""
        if self._layout is None:
            self._layout = read_layout(self.root)
        return self._layout

    @property
    def train_class_names(self) -> list[str]:
        """The training vocabulary: the base classes (every class without a ``novel`` list)."""
        return self.layout.train_class_names

    @property
    def eval_benchmarks(self) -> list[BenchmarkInfo]:
        """One benchmark, :attr:`name`: every class, the base ones marked seen when there are novel ones."""
        return [BenchmarkInfo(self.name, self.layout.class_names, self.layout.seen_classes)]

    def check(self, splits: Sequence[str], full: bool = False) -> CheckReport:
        """The dataset check of ``splits`` (fast part unless ``full``) with this module's batch size."""
        batch = self.batch_size if self.drop_last else None
        return check_dataset(self.root, splits, full=full, batch_size=batch, train_split=self.train_split)

    def preflight(self, splits: Sequence[str]) -> None:
        """Runs the fast check once per split and raises :class:`DatasetCheckError` on errors."""
        todo = [s for s in splits if s not in self._checked]
        if todo:
            self.check(todo).raise_if_errors()
            self._checked.update(todo)

    def setup(self, stage: str | None = None) -> None:
        """Checks the needed splits (fast part) and builds their datasets."""
        fit = stage in (None, "fit")
        splits = [self.train_split, self.eval_split] if fit else [self.eval_split]
        self.preflight(splits)
        layout = self.layout
        if fit and self.train_dataset is None:
            pairs = layout.pairs(self.train_split).pairs
            self.train_dataset = CustomSegDataset(layout, pairs, train=True, transform=self.train_transform)
        if self.eval_dataset is None:
            pairs = layout.pairs(self.eval_split).pairs
            self.eval_dataset = CustomSegDataset(layout, pairs, train=False, transform=self.eval_transform)

    def _loader(self, dataset: CustomSegDataset, batch_size: int, train: bool) -> DataLoader:
        return segmentation_loader(self, dataset, batch_size, train, self.name)

    def train_dataloader(self) -> DataLoader:
        if self.train_dataset is None:
            self.setup("fit")
        assert self.train_dataset is not None
        return self._loader(self.train_dataset, self.batch_size, train=True)

    def val_dataloader(self) -> list[DataLoader]:
        if self.eval_dataset is None:
            self.setup("validate")
        assert self.eval_dataset is not None
        return [self._loader(self.eval_dataset, self.eval_batch_size, train=False)]

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()
