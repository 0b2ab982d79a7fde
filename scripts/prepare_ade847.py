#!/usr/bin/env python
"""ADE20K-full (ADE20K_2021_17_01) -> 847-class uint16 TIFF labels and resized images in <root>/ADE20K_2021_17_01.

Usage: python scripts/prepare_ade847.py --src <download> [--root $DETECTRON2_DATASETS]  (--help for the expected input)
"""

import sys

from mrovseg.data.prepare.ade847 import main

if __name__ == "__main__":
    sys.exit(main())
