#!/usr/bin/env python
"""Pascal Context 459 (official trainval/*.mat) -> <root>/pcontext_full/{train,val}/{image,label} (uint16 TIFF).

Usage: python scripts/prepare_pc459.py --src <download> [--root $DETECTRON2_DATASETS]  (--help for the expected input)
"""

import sys

from mrovseg.data.prepare.pascal_context import main

if __name__ == "__main__":
    sys.exit(main(459))
