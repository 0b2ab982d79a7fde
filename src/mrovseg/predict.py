"""Prediction entry point: segment your own images with your own words.

    python -m mrovseg.predict ckpt_path=<file> inputs=<files | folder | glob> vocabulary=[cat,"sofa, couch"]

``ckpt_path`` is a checkpoint, a Hub folder or ``hf://owner/name`` (:mod:`mrovseg.serving.hub_format`).

For every input image ``<stem>`` it writes, into ``output_dir`` (default: the Hydra run directory):

* ``<stem>_overlay.png`` — the image blended with the class colours (:func:`mrovseg.serving.overlay.palette`: fixed and
  deterministic, colour ``k`` is the same for class index ``k`` in every image and run), with a legend
  panel on the right listing exactly the classes present in the label map, largest area first, with
  their share of the image area;
* ``<stem>_labels.png`` — the class-index map at the image's own resolution (uint8, or uint16 when the
  vocabulary has more than 255 classes), written by the same :func:`mrovseg.data.image_io.save_label_png` as evaluation;
* ``<stem>.json`` — ``vocabulary``; ``pixel_counts`` (one count per vocabulary entry, zeros included,
  in vocabulary order); ``class_scores`` (each class's mean score over the working-resolution image,
  :attr:`SegmentationResult.class_scores`); ``legend`` (the present classes as drawn: index, name, pixels, share, colour);
  ``image_size`` / ``working_size`` (``[height, width]``); ``timing`` in seconds; and the settings
  (``precision``: the one used, ``fp32`` or ``bf16``; ``precision_setting``: as given, e.g. ``auto``).

Each file is written to a temporary name and renamed, so an interrupted run never leaves a half-written
file and never damages what an earlier image (or run) wrote; the JSON is written last. An input that
cannot be read is reported by name and the run continues; the run ends with a one-line summary and
exits with status 1 if any input failed. An image above ``max_pixels`` (40 MP) is segmented downscaled (a
log line says so; labels and JSON keep its size, the overlay is drawn at the downscaled size) or, with
``on_large=refuse``, reported as failed before it is decoded. An empty vocabulary, a missing checkpoint
or a checkpoint whose CLIP differs from a requested ``clip=...`` group stop the run before any image is processed.
Inference is :class:`mrovseg.serving.segmenter.Segmenter`'s, so the Python API gives the same labels.

Without a checkpoint, ``model=<name>`` segments with a training-free model (``naclip``, ``sclip``,
``clearclip``, ``dense_clip``: CLIP alone) under its experiment's protocol, ``<name>_vitb16``
(``<name>_toy`` with ``clip=toy``; :mod:`mrovseg.serving.from_config`), exactly as
``python -m mrovseg.eval experiment=<name>_vitb16`` runs it; ``model.<switch>=...`` overrides apply.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig

from mrovseg.config import CONF_DIR
from mrovseg.data.image_files import output_stems, resolve_inputs
from mrovseg.serving.outputs import write_outputs
from mrovseg.training.checkpoint import clip_overrides_of

log = logging.getLogger(__name__)


@dataclass
class PredictSummary:
    """Outcome of a prediction run: the written stems, the failed inputs and their errors, the time."""

    output_dir: Path
    ok: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Processed images (ok or failed) per second of the image loop."""
        n = len(self.ok) + len(self.failed)
        return n / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line summary logged at the end of a run."""
        return (
            f"predict: {len(self.ok)} ok, {len(self.failed)} failed in {self.seconds:.2f} s "
            f"({self.images_per_second:.2f} img/s) -> {self.output_dir}"
        )


def predict(cfg: DictConfig) -> PredictSummary:
    """Segments every input of a composed ``predict`` config; see the module docstring.

    Raises:
        ValueError, FileNotFoundError: Bad settings (checked before any image is processed).
    """
    from mrovseg.config_checks import check_config
    from mrovseg.data.vocabularies import resolve_vocabulary
    from mrovseg.serving.from_config import training_free_source
    from mrovseg.serving.pixel_limit import DEFAULT_MAX_PIXELS, check_limit
    from mrovseg.serving.precision import resolve_device
    from mrovseg.serving.segmenter import Segmenter

    check_config(cfg)  # e.g. output_dir= an existing file: one line, before the model is loaded
    if not cfg.get("ckpt_path") and not cfg.get("model"):
        raise ValueError(
            "ckpt_path is required: pass ckpt_path=<checkpoint written by mrovseg.train>, or model=<name> for a "
            "training-free model that needs none (model=naclip | sclip | clearclip | dense_clip)."
        )
    if cfg.get("vocabulary") is None:
        raise ValueError('vocabulary is required: e.g. vocabulary=[cat,"sofa, couch"] or vocabulary=ade150.')
    vocab = cfg.vocabulary
    vocabulary = resolve_vocabulary(list(vocab) if isinstance(vocab, ListConfig) else str(vocab))
    if cfg.get("inputs") is None:
        raise ValueError(
            "inputs is required: pass inputs=<image file | folder | glob> or inputs=[a.jpg,b.png]."
        )
    inputs = cfg.inputs
    paths = resolve_inputs(list(inputs) if isinstance(inputs, ListConfig) else str(inputs))
    device = resolve_device(cfg.get("device", "auto"))
    out_dir = Path(cfg.output_dir).expanduser()
    alpha = float(cfg.get("alpha", 0.5))
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    max_pixels, on_large = check_limit(
        cfg.get("max_pixels", DEFAULT_MAX_PIXELS), cfg.get("on_large", "downscale")
    )

    training_free = training_free_source(cfg)  # model=<name> and no checkpoint: (experiment, options)
    load = Segmenter.from_config if training_free else Segmenter.from_checkpoint
    source, options = training_free or (cfg.ckpt_path, {})
    segmenter = load(
        source,
        device=device,
        short_side=cfg.get("short_side"),
        clip_overrides=clip_overrides_of(cfg),
        window_batch=cfg.get("window_batch"),
        precision=cfg.get("precision", "auto"),
        compile=bool(cfg.get("compile", False)),
        max_pixels=max_pixels,
        on_large=on_large,
        **options,
    )
    t0 = time.perf_counter()
    segmenter.text_embeddings(vocabulary)
    log.info(
        "Vocabulary of %d classes encoded in %.2f s; segmenting %d image(s) on %s (precision %s) into %s",
        len(vocabulary),
        time.perf_counter() - t0,
        len(paths),
        device,
        segmenter.precision,
        out_dir,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(output_dir=out_dir)
    extra = {"checkpoint": str(cfg.ckpt_path), "short_side": segmenter.short_side, "device": str(device)}
    extra.update(precision=segmenter.precision, precision_setting=str(cfg.get("precision", "auto")))
    if not cfg.get("ckpt_path"):  # a training-free model: the experiment it ran with
        extra.update(checkpoint=None, experiment=source)
    start = time.perf_counter()
    for path, stem in _progress(
        list(zip(paths, output_stems(paths))), enabled=bool(cfg.get("progress", True))
    ):
        try:
            result = segmenter.segment(path, vocabulary, return_scores=False)
            write_outputs(result, out_dir, stem, alpha, {"image": str(path), **extra})
            summary.ok.append(stem)
        except Exception as err:  # one bad input must not stop the others
            summary.failed[str(path)] = f"{type(err).__name__}: {err}"
            log.error("FAILED %s: %s: %s", path, type(err).__name__, err)
    summary.seconds = time.perf_counter() - start
    for name, reason in summary.failed.items():
        log.error("failed: %s (%s)", name, reason)
    log.info(summary.line())
    return summary


def _progress(items: list, enabled: bool) -> Any:
    """Iterates ``items`` under a tqdm bar that keeps log lines above it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    if not enabled:
        yield from items
        return
    with logging_redirect_tqdm():
        yield from tqdm(items, desc="segmenting", unit="img", dynamic_ncols=True)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; exits with status 1 when any input failed."""
    summary = predict(cfg)
    if summary.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
