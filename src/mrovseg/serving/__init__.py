"""Serving trained models: :class:`~mrovseg.serving.segmenter.Segmenter` (model + text encoder only),
the files ``predict`` and the demo write, and label overlays."""
