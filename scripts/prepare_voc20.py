#!/usr/bin/env python
"""Pascal VOC 2012 -> VOC-20 labels in <root>/VOC2012/annotations_detectron2 (background -> ignore).

Usage: python scripts/prepare_voc20.py --src <download> [--root $DETECTRON2_DATASETS]  (--help for the expected input)
"""

import sys

from mrovseg.data.prepare.voc import main

if __name__ == "__main__":
    sys.exit(main())
