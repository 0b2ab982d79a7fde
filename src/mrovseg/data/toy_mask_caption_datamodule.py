"""The toy world with a caption per training scene (for caption-supervised methods, e.g. OVSeg mining).

Identical to :class:`~mrovseg.data.toy_datamodule.ToyDataModule` (same scenes, labels, splits), except
that each training sample also carries ``"caption"``: a toy caption (:func:`~mrovseg.data.captions.toy_caption`)
naming every object at least half visible, base *and* novel, as the toy CLIP's pretraining captions do
(a real caption corpus names arbitrary things too). ``caption_classes="base"`` names base objects only.
"""

from __future__ import annotations

from typing import Any

from mrovseg.data.captions import toy_caption
from mrovseg.data.synthetic import render_scene, scene_rng, to_sample
from mrovseg.data.toy_datamodule import ToyDataModule, ToyDataset


class CaptionedToyDataset(ToyDataset):
    """Toy scenes with a ``"caption"`` string per sample.

    Args:
        *args: as :class:`ToyDataset`.
        caption_classes: ``"all"`` (every visible object) or ``"base"`` (visible base objects only).
        **kwargs: as :class:`ToyDataset`.
    """

    def __init__(self, *args: Any, caption_classes: str = "all", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if caption_classes not in ("all", "base"):
            raise ValueError(f"caption_classes must be 'all' or 'base', got {caption_classes!r}.")
        self.caption_classes = caption_classes

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        scene = render_scene(scene_rng(self.seed, self.split, index), self.world, self.cfg)
        base = set(self.world.base_classes)
        names = [
            self.world.class_names[o.class_id]
            for o, v in zip(scene.objects, scene.visible)
            if v >= 0.5 and (self.caption_classes == "all" or o.class_id in base)
        ]
        caption = toy_caption(names, scene_rng(self.seed, f"{self.split}-caption", index))
        if self.label_map is not None:
            scene.label = self.label_map[scene.label]
        sample = to_sample(scene, f"toy_{self.split}_{index:05d}")
        sample["caption"] = caption
        return sample


class ToyMaskCaptionDataModule(ToyDataModule):
    """:class:`ToyDataModule` whose training samples carry captions.

    Args:
        caption_classes: ``"all"`` or ``"base"`` (see :class:`CaptionedToyDataset`).
        **kwargs: as :class:`ToyDataModule`.
    """

    train_dataset_class = CaptionedToyDataset

    def __init__(self, caption_classes: str = "all", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.caption_classes = caption_classes

    def train_dataset_kwargs(self) -> dict[str, Any]:  # captions are drawn per scene, nothing is kept
        return {"caption_classes": self.caption_classes}
