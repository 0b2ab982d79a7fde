#!/usr/bin/env python
"""Your own annotations -> the custom layout of data=custom (classes.txt, images/<split>, labels/<split>).

Usage:
  python scripts/prepare_custom.py coco --out DIR --split train --images IMGS --annotations instances.json [stuff.json]
  python scripts/prepare_custom.py coco --out DIR --split val --images IMGS --annotations panoptic.json --masks PNGS
  python scripts/prepare_custom.py colour --out DIR --split train --images IMGS --masks MASKS --table colours.csv
  python scripts/prepare_custom.py toy --out DIR          # a sample dataset from the toy world
(--help of each subcommand for the details; README "Your own dataset")
"""

import sys

from mrovseg.data.prepare.custom import main

if __name__ == "__main__":
    sys.exit(main())
