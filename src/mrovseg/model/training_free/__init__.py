"""Training-free methods on CLIP alone: dense CLIP (MaskCLIP's value path)."""

from mrovseg.model.training_free.dense_clip import DenseCLIP

__all__ = ["DenseCLIP"]
