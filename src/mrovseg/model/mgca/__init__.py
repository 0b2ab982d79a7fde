"""MGCA-style text-supervised segmentation (docs/mgca.md): model, alignment losses, semantic units."""

from mrovseg.model.mgca.losses import MGCALoss
from mrovseg.model.mgca.model import MGCA

__all__ = ["MGCA", "MGCALoss"]
