"""``python -m mrovseg.demo``: see :mod:`mrovseg.demo.app`."""

from mrovseg.demo.app import main

if __name__ == "__main__":
    main()
