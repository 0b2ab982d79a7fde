"""MROVSeg: multi-resolution open-vocabulary semantic segmentation with a single frozen CLIP ViT.

Reference: "MROVSeg: Breaking the Resolution Curse of Vision-Language Models in Open-Vocabulary
Semantic Segmentation", arXiv 2408.14776.
"""

from mrovseg.constants import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "Segmenter"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy import so `import mrovseg` stays cheap (no Lightning/Hydra import).
    if name == "Segmenter":
        from mrovseg.serving.segmenter import Segmenter

        return Segmenter
    raise AttributeError(f"module 'mrovseg' has no attribute {name!r}")
