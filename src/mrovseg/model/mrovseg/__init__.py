"""MROVSeg (arXiv 2408.14776): slicer (multi-resolution front-end), Multi-Res Adapter, hierarchical mask
decoder, multi-grained classifier and the meta-architecture that joins them (:mod:`.model`)."""

from mrovseg.model.mrovseg.model import MROVSeg

__all__ = ["MROVSeg"]
