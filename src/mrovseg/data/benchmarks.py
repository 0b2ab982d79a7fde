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
        classes_of_interest: Indices whose mean IoU is reported as ``coi_mIoU`` (MESS), or None.
        domain: The benchmark's domain (MESS: general, earth monitoring, medical, …), or None.
    """

    name: str
    class_names: list[str]
    seen_classes: list[int] | None = None
    classes_of_interest: list[int] | None = None
    domain: str | None = None


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


def _spec(
    name: str,
    title: str,
    images: str,
    labels: str,
    *,
    train: str = "train",
    val: str = "val",
    image_suffix: str = ".jpg",
    label_suffix: str = ".png",
    ignore_value: int = 255,
    recursive: bool = False,
    list_from: Literal["images", "labels"] = "images",
) -> BenchmarkSpec:
    """A registry entry with vocabulary ``VOCABULARIES[name]`` and script ``scripts/prepare_<name>.py``.

    ``images`` and ``labels`` are folder patterns in which ``{}`` stands for the split folder, ``train``
    and ``val`` the folder names of the two splits.
    """
    return BenchmarkSpec(
        name=name,
        title=title,
        class_names=VOCABULARIES[name],
        splits={
            split: SplitLayout(images.format(d), labels.format(d))
            for split, d in (("train", train), ("val", val))
        },
        image_suffix=image_suffix,
        label_suffix=label_suffix,
        ignore_value=ignore_value,
        prepare_script=f"scripts/prepare_{name}.py",
        recursive=recursive,
        list_from=list_from,
    )


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "coco_stuff",
            "COCO-Stuff-164k (171 classes)",
            images="coco/{}",
            labels="coco/stuffthingmaps_detectron2/{}",
            train="train2017",
            val="val2017",
        ),
        _spec(
            "ade150",
            "ADE20K-150",
            images="ADEChallengeData2016/images/{}",
            labels="ADEChallengeData2016/annotations_detectron2/{}",
            train="training",
            val="validation",
        ),
        _spec(
            "ade847",
            "ADE20K-847 (ADE20K_2021_17_01)",
            images="ADE20K_2021_17_01/images_detectron2/{}",
            labels="ADE20K_2021_17_01/annotations_detectron2/{}",
            train="training",
            val="validation",
            label_suffix=".tif",
            ignore_value=65535,
        ),
        _spec("pc59", "Pascal Context 59", images="pcontext/{}/image", labels="pcontext/{}/label"),
        _spec(
            "pc459",
            "Pascal Context 459",
            images="pcontext_full/{}/image",
            labels="pcontext_full/{}/label",
            label_suffix=".tif",
            ignore_value=65535,
        ),
        _spec(
            "voc20",
            "Pascal VOC 2012 (20 classes, background ignored)",
            images="VOC2012/JPEGImages",
            labels="VOC2012/annotations_detectron2/{}",
            list_from="labels",
        ),
        _spec(
            "cityscapes",
            "Cityscapes (19 classes)",
            images="cityscapes/leftImg8bit/{}",
            labels="cityscapes/gtFine/{}",
            image_suffix="_leftImg8bit.png",
            label_suffix="_gtFine_labelTrainIds.png",
            recursive=True,
        ),
    )
}


def get_benchmark(name: str) -> BenchmarkSpec:
    """Looks a benchmark up by name; raises ``KeyError`` listing the known names."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]
