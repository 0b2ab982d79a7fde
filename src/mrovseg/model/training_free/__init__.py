"""Training-free methods on CLIP alone: one family whose last CLIP block is rebuilt by switches
(:mod:`.last_block`): dense CLIP (MaskCLIP's value path), SCLIP, ClearCLIP and NACLIP."""

from mrovseg.model.training_free.dense_clip import DenseCLIP
from mrovseg.model.training_free.last_block import LastBlockCLIP
from mrovseg.model.training_free.methods import NACLIP, SCLIP, ClearCLIP

__all__ = ["NACLIP", "SCLIP", "ClearCLIP", "DenseCLIP", "LastBlockCLIP"]
