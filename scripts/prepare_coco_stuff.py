#!/usr/bin/env python
"""COCO-Stuff-164k stuffthingmaps -> 171-class labels in <root>/coco/stuffthingmaps_detectron2.

Usage: python scripts/prepare_coco_stuff.py --src <download> [--root $DETECTRON2_DATASETS]  (--help for the expected input)
"""

import sys

from mrovseg.data.prepare.coco_stuff import main

if __name__ == "__main__":
    sys.exit(main())
