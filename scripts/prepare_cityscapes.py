#!/usr/bin/env python
"""Cityscapes gtFine labelIds -> *_gtFine_labelTrainIds.png in <root>/cityscapes/gtFine.

Usage: python scripts/prepare_cityscapes.py --src <download> [--root $DETECTRON2_DATASETS]  (--help for the expected input)
"""

import sys

from mrovseg.data.prepare.cityscapes import main

if __name__ == "__main__":
    sys.exit(main())
