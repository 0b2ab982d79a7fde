"""OVSeg (Liang et al., CVPR 2023): the two-stage baseline (proposals, then CLIP per masked region)."""

from mrovseg.model.ovseg.mask_prompt_clip import MaskPromptCLIP, crop_regions, mask_boxes
from mrovseg.model.ovseg.ovseg import OVSeg, ensemble_probs, probs_to_logits
from mrovseg.model.ovseg.proposal_head import ProposalHead

__all__ = [
    "MaskPromptCLIP",
    "OVSeg",
    "ProposalHead",
    "crop_regions",
    "ensemble_probs",
    "mask_boxes",
    "probs_to_logits",
]
