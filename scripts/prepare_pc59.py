#!/usr/bin/env python
"""Pascal Context 59 (official trainval/*.mat) -> <root>/pcontext/{train,val}/{image,label} (uint8 PNG).

Usage: python scripts/prepare_pc59.py --src <download> [--root $DETECTRON2_DATASETS]  (--help for the expected input)
"""

import sys

from mrovseg.data.prepare.pascal_context import main

if __name__ == "__main__":
    sys.exit(main(59))
