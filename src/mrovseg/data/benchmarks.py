"""Registry of the benchmarks: where each one lives under the dataset root and how its labels are stored.

The layout is the one SAN and detectron2-based projects read (``$DETECTRON2_DATASETS``, default
``datasets/``; DESIGN.md §4), so their users can point this package at data they already have.
``scripts/prepare_<name>.py`` builds it from the official downloads.

- ``coco_stuff``: ``coco/{train2017,val2017}``, ``coco/stuffthingmaps_detectron2/{train2017,val2017}``
  (uint8 PNG, ignore 255, 171 classes)
- ``ade150``: ``ADEChallengeData2016/images/validation``, ``.../annotations_detectron2/validation``
  (uint8 PNG, ignore 255, 150 classes)
- ``ade847``: ``ADE20K_2021_17_01/images_detectron2/validation``, ``.../annotations_detectron2/validation``
  (uint16 TIFF, ignore 65535, 847 classes)
- ``pc59``: ``pcontext/val/image``, ``pcontext/val/label`` (uint8 PNG, ignore 255, 59 classes)
- ``pc459``: ``pcontext_full/val/image``, ``pcontext_full/val/label`` (uint16 TIFF, ignore 65535, 459 classes)
- ``voc20``: ``VOC2012/JPEGImages``, ``VOC2012/annotations_detectron2/val`` (uint8 PNG, ignore 255, 20 classes)
- ``cityscapes``: ``cityscapes/leftImg8bit/val/<city>``, ``cityscapes/gtFine/val/<city>/*_labelTrainIds.png``
  (uint8 PNG, ignore 255, 19 classes)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mrovseg.data.vocabularies import VOCABULARIES

__all__ = ["BENCHMARKS", "BenchmarkInfo", "BenchmarkSpec", "SplitLayout", "get_benchmark"]


@dataclass
class BenchmarkInfo:
    """What the LightningModule needs to score one benchmark (``docs/contracts.md``).

    Attributes:
        name: Benchmark name (metric prefix, e.g. ``val/ade150/mIoU``).
        class_names: Vocabulary in label order; names may carry comma-separated synonyms.
        seen_classes: Indices of classes seen in training (base/novel/hIoU metrics), or None.
    """

    name: str
    class_names: list[str]
    seen_classes: list[int] | None = None


@dataclass(frozen=True)
class SplitLayout:
    """Image and label folders of one split, relative to the dataset root."""

    image_dir: str
    label_dir: str


@dataclass(frozen=True)
class BenchmarkSpec:
    """How one benchmark is stored on disk.

    Attributes:
        name: Registry key.
        title: Human-readable name.
        class_names: Vocabulary in label order.
        splits: Split name (``train``/``val``) to its folders, relative to the root.
        image_suffix: End of an image file name (``.jpg``, ``_leftImg8bit.png``).
        label_suffix: End of a label file name (``.png``, ``.tif``, ``_gtFine_labelTrainIds.png``).
        ignore_value: The on-disk ignore value (255 in uint8 PNG, 65535 in uint16 TIFF).
        prepare_script: The script that builds the layout from the official download.
        recursive: Files sit in sub-folders (Cityscapes' ``<city>/``).
        list_from: Which folder enumerates the samples. VOC's ``JPEGImages`` holds all 17k images
            while only the split's images have labels, so VOC is listed from its labels.
    """

    name: str
    title: str
    class_names: tuple[str, ...]
    splits: dict[str, SplitLayout]
    image_suffix: str
    label_suffix: str
    ignore_value: int
    prepare_script: str
    recursive: bool = False
    list_from: Literal["images", "labels"] = "images"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def info(self) -> BenchmarkInfo:
        """The :class:`BenchmarkInfo` of this benchmark (no seen/unseen split)."""
        return BenchmarkInfo(name=self.name, class_names=list(self.class_names), seen_classes=None)

    def layout(self, split: str) -> SplitLayout:
        """The folders of ``split``; raises ``KeyError`` naming the available splits."""
        if split not in self.splits:
            raise KeyError(
                f"benchmark {self.name!r} has no split {split!r}; available: {sorted(self.splits)}"
            )
        return self.splits[split]

    def describe_layout(self, root: str | Path, split: str) -> str:
        """A one-paragraph description of the expected files of a split, used in error messages."""
        lay = self.layout(split)
        sub = "<sub-folder>/" if self.recursive else ""
        return (
            f"expected layout for {self.title} ({split}): images {Path(root) / lay.image_dir}/{sub}<name>"
            f"{self.image_suffix} and labels {Path(root) / lay.label_dir}/{sub}<name>{self.label_suffix} "
            f"(ignore value {self.ignore_value}, {self.num_classes} classes); build it from the official "
            f"download with `python {self.prepare_script} --help`"
        )


def _two(image_fmt: str, label_fmt: str, names: dict[str, str]) -> dict[str, SplitLayout]:
    return {split: SplitLayout(image_fmt.format(d), label_fmt.format(d)) for split, d in names.items()}


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec(
            name="coco_stuff",
            title="COCO-Stuff-164k (171 classes)",
            class_names=VOCABULARIES["coco_stuff"],
            splits=_two(
                "coco/{}", "coco/stuffthingmaps_detectron2/{}", {"train": "train2017", "val": "val2017"}
            ),
            image_suffix=".jpg",
            label_suffix=".png",
            ignore_value=255,
            prepare_script="scripts/prepare_coco_stuff.py",
        ),
        BenchmarkSpec(
            name="ade150",
            title="ADE20K-150",
            class_names=VOCABULARIES["ade150"],
            splits=_two(
                "ADEChallengeData2016/images/{}",
                "ADEChallengeData2016/annotations_detectron2/{}",
                {"train": "training", "val": "validation"},
            ),
            image_suffix=".jpg",
            label_suffix=".png",
            ignore_value=255,
            prepare_script="scripts/prepare_ade150.py",
        ),
        BenchmarkSpec(
            name="ade847",
            title="ADE20K-847 (ADE20K_2021_17_01)",
            class_names=VOCABULARIES["ade847"],
            splits=_two(
                "ADE20K_2021_17_01/images_detectron2/{}",
                "ADE20K_2021_17_01/annotations_detectron2/{}",
                {"train": "training", "val": "validation"},
            ),
            image_suffix=".jpg",
            label_suffix=".tif",
            ignore_value=65535,
            prepare_script="scripts/prepare_ade847.py",
        ),
        BenchmarkSpec(
            name="pc59",
            title="Pascal Context 59",
            class_names=VOCABULARIES["pc59"],
            splits=_two("pcontext/{}/image", "pcontext/{}/label", {"train": "train", "val": "val"}),
            image_suffix=".jpg",
            label_suffix=".png",
            ignore_value=255,
            prepare_script="scripts/prepare_pc59.py",
        ),
        BenchmarkSpec(
            name="pc459",
            title="Pascal Context 459",
            class_names=VOCABULARIES["pc459"],
            splits=_two("pcontext_full/{}/image", "pcontext_full/{}/label", {"train": "train", "val": "val"}),
            image_suffix=".jpg",
            label_suffix=".tif",
            ignore_value=65535,
            prepare_script="scripts/prepare_pc459.py",
        ),
        BenchmarkSpec(
            name="voc20",
            title="Pascal VOC 2012 (20 classes, background ignored)",
            class_names=VOCABULARIES["voc20"],
            splits=_two(
                "VOC2012/JPEGImages", "VOC2012/annotations_detectron2/{}", {"train": "train", "val": "val"}
            ),
            image_suffix=".jpg",
            label_suffix=".png",
            ignore_value=255,
            prepare_script="scripts/prepare_voc20.py",
            list_from="labels",
        ),
        BenchmarkSpec(
            name="cityscapes",
            title="Cityscapes (19 classes)",
            class_names=VOCABULARIES["cityscapes"],
            splits=_two(
                "cityscapes/leftImg8bit/{}", "cityscapes/gtFine/{}", {"train": "train", "val": "val"}
            ),
            image_suffix="_leftImg8bit.png",
            label_suffix="_gtFine_labelTrainIds.png",
            ignore_value=255,
            prepare_script="scripts/prepare_cityscapes.py",
            recursive=True,
        ),
    )
}


def get_benchmark(name: str) -> BenchmarkSpec:
    """Looks a benchmark up by name; raises ``KeyError`` listing the known names."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]
