"""Try it in the browser: a Gradio page over the same :class:`~mrovseg.serving.segmenter.Segmenter` as ``predict``.

    python -m mrovseg.demo ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt   # or: mrovseg-demo ...
    python -m mrovseg.demo model=naclip    # no checkpoint: a training-free model on CLIP alone (ViT-B/16)
    python -m mrovseg.demo ckpt_path=hf://owner/name   # a model shared on the Hub (or its folder)
    # then open http://127.0.0.1:7860

Drop a photo (or pick an example), type a vocabulary — one class per line, synonyms after commas — or
pick a benchmark vocabulary (its names fill the box and stay editable), press Segment. The page shows
the overlay and its legend (drawn by ``predict``'s own :func:`render_overlay`), a table of the classes
present with their area share and mean score, the timing, and offers the label PNG and the JSON exactly
as ``python -m mrovseg.predict`` writes them (its :func:`write_outputs`). Labels are
:meth:`Segmenter.seg`'s on the uploaded file itself, so they equal ``predict``'s pixel for pixel. The
opacity slider re-blends the kept labels without running the model again.

Offline by design: no analytics (``GRADIO_ANALYTICS_ENABLED=False``), fonts served by the app itself,
no share link unless ``demo.share=true``. Bad input (an empty vocabulary, more than ``demo.max_classes``
classes, a file that is not an image, an upload over ``demo.max_file_size``) is reported on the page in
words that name no server path; an image whose long side exceeds ``demo.max_side`` is resized, with a
notice; class names CLIP would cut (over its 77 tokens) and entries equal up to case get a warning. The
server keeps serving after each. Uploads are deleted once segmented; Gradio's copies of the results
after ``demo.cache_minutes``.

Settings: ``conf/demo.yaml``. The page is :mod:`mrovseg.demo.page`, the session behind it
:mod:`mrovseg.demo.session`; this module only wires them from the config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig

from mrovseg.config import CONF_DIR
from mrovseg.demo.page import build_app, launch_app
from mrovseg.demo.session import DemoSession, default_vocabulary, example_images
from mrovseg.serving.from_config import training_free_source
from mrovseg.serving.segmenter import Segmenter
from mrovseg.training.checkpoint import clip_overrides_of


# ---------------------------------------------------------------------------------------- entry
def build_from_config(cfg: DictConfig) -> tuple[Any, DemoSession]:
    """Loads the checkpoint and builds the page (see :func:`mrovseg.demo.page.build_app`).

    Raises:
        ValueError, FileNotFoundError: Bad settings, before the server starts.
    """
    from mrovseg.config_checks import check_config

    check_config(cfg)  # e.g. output_dir= an existing file: one line, before the model is loaded
    if not cfg.get("ckpt_path") and not cfg.get("model"):
        raise ValueError(
            "ckpt_path is required: python -m mrovseg.demo ckpt_path=<checkpoint written by mrovseg.train> "
            "(make train writes outputs/train/runs/<run>/checkpoints/last.ckpt), or model=<name> for a "
            "training-free model that needs none (model=naclip | sclip | clearclip | dense_clip)."
        )
    demo = cfg.demo
    training_free = training_free_source(cfg)  # model=<name> and no checkpoint: (experiment, options)
    load = Segmenter.from_config if training_free else Segmenter.from_checkpoint
    source, options = training_free or (cfg.ckpt_path, {})
    segmenter = load(
        source,
        device=cfg.get("device", "auto"),
        short_side=cfg.get("short_side", "auto"),
        clip_overrides=clip_overrides_of(cfg),
        window_batch=cfg.get("window_batch"),
        precision=cfg.get("precision", "auto"),
        compile=bool(cfg.get("compile", False)),
        **options,
    )
    session = DemoSession(
        segmenter,
        max_side=demo.max_side,
        max_classes=demo.max_classes,
        output_root=Path(cfg.output_dir) / "segmentations",
        extra={
            "checkpoint": str(cfg.ckpt_path) if cfg.get("ckpt_path") else None,
            **({} if cfg.get("ckpt_path") else {"experiment": source}),
            "device": str(segmenter.device),
            "precision": segmenter.precision,
        },
    )
    examples = demo.get("examples")
    if examples:
        paths = [str(p) for p in (examples if isinstance(examples, (ListConfig, Sequence)) else [examples])]
    else:
        paths = example_images(Path(cfg.output_dir) / "examples", int(demo.num_examples))
    vocabulary = default_vocabulary(segmenter, str(demo.vocabulary))
    minutes = demo.get("cache_minutes")
    app = build_app(session, paths, vocabulary=vocabulary, alpha=float(demo.alpha), cache_minutes=minutes)
    return app, session


def launch(app: Any, demo: DictConfig, block: bool = True) -> Any:
    """Starts the server (``demo.host``, ``demo.port``, ``demo.share``, ``demo.max_file_size``); returns
    ``(app, url, share_url)``."""
    return launch_app(
        app,
        host=str(demo.host),
        port=demo.get("port"),
        share=bool(demo.share),
        block=block,
        max_file_size=demo.get("max_file_size"),
    )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="demo")
def main(cfg: DictConfig) -> None:
    """Hydra entry point (``python -m mrovseg.demo``, ``mrovseg-demo``)."""
    app, _ = build_from_config(cfg)
    launch(app, cfg.demo)


if __name__ == "__main__":
    main()
