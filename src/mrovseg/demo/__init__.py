"""The browser demo: ``python -m mrovseg.demo ckpt_path=...`` (:mod:`mrovseg.demo.app`).

``session`` (no Gradio) ← ``page`` (the Gradio page) ← ``app`` (the Hydra entry point).
"""
