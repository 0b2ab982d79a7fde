"""The one semantic-segmentation dataset: (image, label) pairs of any registered benchmark.

A sample follows ``docs/contracts.md``: ``image`` float32 ``(3, H, W)`` RGB in ``[0, 1]``, ``label``
int64 ``(H, W)`` in ``[0, K) ∪ {IGNORE_INDEX}``, ``name`` the image file stem. The on-disk ignore value
of the benchmark (255 in uint8 PNG, 65535 in uint16 TIFF) becomes ``IGNORE_INDEX`` (-1).

Images are read in their stored pixel orientation (EXIF orientation is *not* applied): label maps of
COCO, ADE20K, Pascal and Cityscapes are drawn on the stored pixel grid, and the prepare scripts read
them the same way, so rotating the image alone would misalign it with its label.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.benchmarks import BenchmarkSpec, get_benchmark
from mrovseg.data.image_io import ImageReadError, load_image, load_label

__all__ = ["DatasetLayoutError", "LabelValueError", "SemanticSegDataset", "Transform"]

#: ``(image uint8 (H, W, 3), label int32 (H, W)) -> (image, label)``, e.g. ``TrainTransform``.
Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class DatasetLayoutError(FileNotFoundError):
    """The dataset root does not hold the expected layout; the message says what to build and how."""


class LabelValueError(ValueError):
    """A label map holds a value outside ``[0, K) ∪ {ignore}``, or does not match its image's size."""


def _list_files(folder: Path, suffix: str, recursive: bool) -> dict[str, Path]:
    """Maps ``relative path without suffix`` -> path for the files of ``folder`` ending in ``suffix``."""
    found: dict[str, Path] = {}
    if recursive:
        for dirpath, _dirs, files in os.walk(folder):
            for fname in files:
                if fname.endswith(suffix):
                    path = Path(dirpath) / fname
                    found[str(path.relative_to(folder))[: -len(suffix)]] = path
    else:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(suffix) and not entry.is_dir():
                    found[entry.name[: -len(suffix)]] = Path(entry.path)
    return found


class SemanticSegDataset(Dataset):
    """(image, label) pairs of one split of a benchmark laid out as in :mod:`mrovseg.data.benchmarks`.

    The folders are scanned once at construction; every image must have its label (for VOC, which
    keeps all images in one folder, every label must have its image).

    Args:
        root: Dataset root (``$DETECTRON2_DATASETS``).
        benchmark: Registry name (``coco_stuff``, ``ade150``, ...) or a :class:`BenchmarkSpec`.
        split: ``train`` or ``val``.
        transform: Applied to ``(uint8 image, int32 label)`` before conversion to tensors.
        check_labels: Raise :class:`LabelValueError` on label values outside ``[0, K) ∪ {ignore}``
            (one ``max`` per sample, and a scan only when the max exceeds ``K - 1``).

    Raises:
        DatasetLayoutError: Missing root or split folder, no samples, or an image without label.
    """

    def __init__(
        self,
        root: str | Path,
        benchmark: str | BenchmarkSpec,
        split: str = "val",
        transform: Transform | None = None,
        check_labels: bool = True,
    ) -> None:
        self.spec = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
        self.root = Path(root).expanduser()
        self.split = split
        self.transform = transform
        self.check_labels = check_labels
        layout = self.spec.layout(split)
        self.image_dir = self.root / layout.image_dir
        self.label_dir = self.root / layout.label_dir
        self.samples = self._scan()

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    def _layout_hint(self) -> str:
        return self.spec.describe_layout(self.root, self.split)

    def _scan(self) -> list[tuple[Path, Path, str]]:
        spec = self.spec
        if not self.root.is_dir():
            raise DatasetLayoutError(
                f"dataset root {self.root} does not exist (set $DETECTRON2_DATASETS or data.root=...); "
                + self._layout_hint()
            )
        for what, folder in (("image", self.image_dir), ("label", self.label_dir)):
            if not folder.is_dir():
                raise DatasetLayoutError(f"{what} folder {folder} is missing; " + self._layout_hint())
        images = _list_files(self.image_dir, spec.image_suffix, spec.recursive)
        labels = _list_files(self.label_dir, spec.label_suffix, spec.recursive)
        primary, other = (images, labels) if spec.list_from == "images" else (labels, images)
        if not primary:
            kind, folder, suffix = (
                ("image", self.image_dir, spec.image_suffix)
                if spec.list_from == "images"
                else ("label", self.label_dir, spec.label_suffix)
            )
            raise DatasetLayoutError(f"no {kind} files *{suffix} in {folder}; " + self._layout_hint())
        missing = sorted(key for key in primary if key not in other)
        if missing:
            first = primary[missing[0]]
            if spec.list_from == "images":
                what = f"image {first} has no label: expected {self.label_dir / (missing[0] + spec.label_suffix)}"
            else:
                what = f"label {first} has no image: expected {self.image_dir / (missing[0] + spec.image_suffix)}"
            raise DatasetLayoutError(
                f"{what} ({len(missing)} of {len(primary)} unmatched); " + self._layout_hint()
            )
        return [(images[key], labels[key], images[key].stem) for key in sorted(primary)]

    def __len__(self) -> int:
        return len(self.samples)

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw pair: ``uint8 (H, W, 3)`` RGB image and ``int32 (H, W)`` label with ``IGNORE_INDEX``."""
        image_path, label_path, _ = self.samples[index]
        try:
            image = load_image(image_path, exif_transpose=False)
            raw = load_label(label_path)
        except ImageReadError as err:
            raise ImageReadError(f"{err}; {self._layout_hint()}") from err
        if raw.shape != image.shape[:2]:
            raise LabelValueError(
                f"label {label_path} is {raw.shape[1]}x{raw.shape[0]} but its image {image_path} is "
                f"{image.shape[1]}x{image.shape[0]} (width x height); " + self._layout_hint()
            )
        return image, self._map_label(raw, label_path)

    def _map_label(self, raw: np.ndarray, path: Path) -> np.ndarray:
        k, ignore = self.spec.num_classes, self.spec.ignore_value
        if self.check_labels:
            if raw.dtype.kind == "i" and raw.min(initial=0) < 0:
                bad_value = int(raw.min())
            elif int(raw.max(initial=0)) >= k:
                bad = raw[(raw >= k) & (raw != ignore)]
                bad_value = int(bad[0]) if bad.size else None
            else:
                bad_value = None
            if bad_value is not None:
                raise LabelValueError(
                    f"label {path} holds value {bad_value}, outside [0, {k}) ∪ {{{ignore}}} of {self.spec.title}; "
                    f"re-create it with `python {self.spec.prepare_script}`"
                )
        label = raw.astype(np.int32)
        label[raw == ignore] = IGNORE_INDEX
        return label

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        image, label = self.load_pair(index)
        if self.transform is not None:
            image, label = self.transform(image, label)
        image_t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
        label_t = torch.from_numpy(np.ascontiguousarray(label)).long()
        return {"image": image_t.contiguous(), "label": label_t, "name": self.samples[index][2]}
