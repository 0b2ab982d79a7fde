"""Builders of the dataset layout from the official downloads (used by ``scripts/prepare_*.py``).

One module per benchmark; each exposes ``prepare_<name>(src, root, ...) -> PrepareReport`` and a
``main(argv)`` CLI. The shared checks, writers and report live in :mod:`.common`.
"""

from mrovseg.data.prepare.ade150 import prepare_ade150
from mrovseg.data.prepare.ade847 import prepare_ade847
from mrovseg.data.prepare.cityscapes import prepare_cityscapes
from mrovseg.data.prepare.coco_stuff import prepare_coco_stuff
from mrovseg.data.prepare.common import PrepareError, PrepareReport
from mrovseg.data.prepare.pascal_context import prepare_pcontext
from mrovseg.data.prepare.voc import prepare_voc20

__all__ = [
    "PrepareError",
    "PrepareReport",
    "prepare_ade150",
    "prepare_ade847",
    "prepare_cityscapes",
    "prepare_coco_stuff",
    "prepare_pcontext",
    "prepare_voc20",
]
