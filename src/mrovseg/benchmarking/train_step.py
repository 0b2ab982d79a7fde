"""One optimizer step as ``python -m mrovseg.train`` runs it, outside Lightning, for timing and profiling.

Forward through ``MROVSeg`` in train mode (deep supervision on), the experiment's full criterion
(Hungarian matcher, uncertainty point sampling, CE + BCE + dice on the final and every auxiliary
prediction), backward, gradient-norm clipping (``trainer.gradient_clip_val``) and AdamW over the
trainable parameters (the experiment's ``module.optimizer``; fused on CUDA, ``mrovseg.training.speed``). ``bf16`` runs forward and loss
under bfloat16 autocast, as Lightning's ``bf16-mixed`` does. Inputs are random images and blocky
random label maps of ``classes`` classes; text embeddings are random.
"""

from __future__ import annotations

from dataclasses import dataclass

import hydra
import torch
import torch.nn.functional as F
from torch import nn

from mrovseg.benchmarking.build import Built, random_text
from mrovseg.benchmarking.timing import precision_context
from mrovseg.model.criterion import SetCriterion, targets_from_semantic
from mrovseg.model.mrovseg.model import MROVSeg
from mrovseg.training.optim import decay_groups
from mrovseg.training.speed import optimizer_options


def random_labels(batch: int, side: int, classes: int, seed: int = 0, cells: int = 4) -> torch.Tensor:
    """``(batch, side, side)`` int64 label maps: a ``cells × cells`` grid of random classes, upsampled."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, classes, (batch, 1, cells, cells), generator=g).float()
    return F.interpolate(coarse, size=(side, side), mode="nearest")[:, 0].long()


@dataclass
class TrainStep:
    """A callable training step on fixed inputs; ``step()`` returns the loss."""

    model: MROVSeg
    criterion: SetCriterion
    optimizer: torch.optim.Optimizer
    images: torch.Tensor
    labels: torch.Tensor
    text: torch.Tensor
    bf16: bool = False
    clip_norm: float | None = 0.01

    def forward_loss(self) -> torch.Tensor:
        """Forward and weighted loss (under autocast when ``bf16``)."""
        with precision_context(self.bf16, self.images.device):
            outputs = self.model(self.images, self.text)
            losses = self.criterion(outputs, targets_from_semantic(self.labels))
            return self.criterion.total(losses)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward and gradient-norm clipping."""
        loss.backward()
        if self.clip_norm:
            nn.utils.clip_grad_norm_(self.model.trainable_parameters(), self.clip_norm)

    def optimize(self) -> None:
        """The AdamW update, then clearing the gradients."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> float:
        """One full optimizer step; the loss value."""
        loss = self.forward_loss()
        self.backward(loss)
        self.optimize()
        return float(loss.detach())


def make_train_step(
    built: Built,
    batch: int,
    device: torch.device | str = "cpu",
    classes: int = 171,
    bf16: bool = False,
    seed: int = 0,
) -> TrainStep:
    """A ``TrainStep`` of ``built`` at ``batch`` crops of its side, on ``device`` (model moved there)."""
    device = torch.device(device)
    model = built.model.to(device).train()
    groups = decay_groups(model)
    factory = hydra.utils.instantiate(built.cfg.module.optimizer)  # the experiment's AdamW partial
    optimizer = factory(groups, **optimizer_options(factory, groups))
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, built.side, built.side, generator=g).to(device)
    labels = random_labels(batch, built.side, classes, seed).to(device)
    clip = built.cfg.trainer.get("gradient_clip_val")
    return TrainStep(
        model=model,
        criterion=built.criterion().to(device),
        optimizer=optimizer,
        images=images,
        labels=labels,
        text=random_text(model, classes, seed).to(device),
        bf16=bf16,
        clip_norm=float(clip) if clip else None,
    )
