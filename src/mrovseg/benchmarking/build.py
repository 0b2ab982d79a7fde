"""Builds the benchmarked models from the real Hydra configs (``mrovseg/conf``), random CLIP weights.

``MODELS`` maps a benchmark name to the experiment config it composes (``experiment=<name>``) and
the label printed in tables; nothing about a model's shape is written here. ``clip.pretrained=null``
gives random CLIP weights (no download). ``size`` changes the train crop (= sliding window, padded
up to a multiple of 2 × patch so that p = 0.5 slices have the global view's size) and the global view
(``size / 2``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import hydra
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from mrovseg.config import CONF_DIR
from mrovseg.model.criterion import SetCriterion
from mrovseg.model.inference import sliding_window
from mrovseg.model.mrovseg.model import MROVSeg
from mrovseg.model.mrovseg.slicer import Slicer


class ModelEntry(NamedTuple):
    """A benchmarked model: its experiment config, table label and default inference image sizes."""

    experiment: str
    label: str
    sizes: tuple[tuple[int, int], ...] = ((640, 640), (2048, 1024))


#: benchmark name → experiment config, label, default ``(width, height)`` sizes of inference mode.
MODELS: dict[str, ModelEntry] = {
    "vitb16": ModelEntry("vitb16", "ViT-B/16"),
    "vitl14": ModelEntry("vitl14", "ViT-L/14"),
    # the default CPU experiment's tiny CLIP and adapter: the paper's set-up / 10 in pixels
    "toy": ModelEntry("toy", "toy", ((64, 64), (128, 64))),
}
#: Slice ratio of the paper's model.
PAPER_RATIO = 0.5


@dataclass
class Built:
    """A built model and its settings.

    Attributes:
        name: benchmark name (a key of ``MODELS``).
        label: table label.
        cfg: the composed config.
        model: ``MROVSeg`` in eval mode, on the CPU.
        side: train crop = sliding-window side = benchmarked input side.
    """

    name: str
    label: str
    cfg: DictConfig
    model: MROVSeg
    side: int

    def criterion(self) -> SetCriterion:
        """The experiment's full training loss (matcher, point sampling, deep-supervision weights)."""
        return hydra.utils.instantiate(self.cfg.criterion)


def compose_experiment(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The training config of ``MODELS[name]`` with random CLIP weights and ``overrides``."""
    if name not in MODELS:
        raise ValueError(f"Unknown benchmark model {name!r}; expected one of {sorted(MODELS)}.")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(
                "train", [f"experiment={MODELS[name].experiment}", "clip.pretrained=null", *overrides]
            )
    finally:
        GlobalHydra.instance().clear()


def build(name: str, size: int | None = None, overrides: Sequence[str] = (), seed: int = 0) -> Built:
    """Composes and instantiates a model (eval mode, CPU); ``size`` overrides the crop (see module doc).

    The random weights are seeded (``seed``), so two builds in different processes are identical.
    """
    cfg = compose_experiment(name, overrides)
    torch.manual_seed(seed)
    backbone = hydra.utils.instantiate(cfg.clip)  # the crop does not change CLIP
    if size is not None:
        side = math.ceil(size / (2 * backbone.patch_size)) * 2 * backbone.patch_size
        cfg = compose_experiment(name, [*overrides, f"module.window={side}", f"model.clip_size={side // 2}"])
    model = hydra.utils.instantiate(cfg.model, backbone=backbone, _convert_="all")
    return Built(
        name=name, label=MODELS[name].label, cfg=cfg, model=model.eval(), side=int(cfg.module.window)
    )


def random_text(model: MROVSeg, classes: int, seed: int = 0) -> torch.Tensor:
    """``classes`` random L2-normalised text embeddings ``(K, E)``."""
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(classes, model.backbone.embed_dim, generator=g), dim=-1)


def set_ratio(model: MROVSeg, ratio: float) -> None:
    """Switches the slice ratio in place (the weights do not depend on p)."""
    model.slicer = Slicer(ratio, model.slicer.clip_size, model.slicer.patch)


def count_params(model: MROVSeg) -> tuple[float, float, float]:
    """Millions of parameters: total, total without CLIP's text tower, trainable."""
    total = sum(p.numel() for p in model.parameters())
    visual = {id(p) for p in model.backbone.visual.parameters()}
    text = sum(p.numel() for p in model.backbone.clip.parameters() if id(p) not in visual)
    trainable = sum(p.numel() for p in model.trainable_parameters())
    return total / 1e6, (total - text) / 1e6, trainable / 1e6


def describe_views(model: MROVSeg, side: int) -> str:
    """The CLIP views of one ``side``² input, e.g. ``1×320² + 4×320²``."""
    layout = model.slicer.layout(side, side)
    view = f"1×{model.slicer.clip_size}²"
    if layout is None:
        return view
    sh, sw = layout.slice_pixels
    return f"{view} + {layout.num_slices}×{sh}²" if sh == sw else f"{view} + {layout.num_slices}×{sh}×{sw}"


def count_windows(width: int, height: int, window: int, overlap: float) -> int:
    """Windows ``sliding_window`` runs on a ``width × height`` image (counted by running it on zeros)."""
    seen = 0

    def score_fn(crops: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        seen += crops.shape[0]
        return crops.new_zeros(crops.shape[0], 1, 1, 1)

    sliding_window(score_fn, torch.zeros(3, height, width), window, overlap, window_batch=64)
    return seen
