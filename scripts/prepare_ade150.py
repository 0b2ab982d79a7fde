#!/usr/bin/env python
"""ADE20K-150 (ADEChallengeData2016) -> <root>/ADEChallengeData2016/annotations_detectron2 (0 -> 255, v -> v-1).

Usage: python scripts/prepare_ade150.py --src <download> [--root $DETECTRON2_DATASETS]  (--help for the expected input)
"""

import sys

from mrovseg.data.prepare.ade150 import main

if __name__ == "__main__":
    sys.exit(main())
