"""Prediction entry point: segment your own images with your own words.

    python -m mrovseg.predict ckpt_path=<file> inputs=<files | folder | glob> vocabulary=[cat,"sofa, couch"]

For every input image ``<stem>`` it writes, into ``output_dir`` (default: the Hydra run directory):

* ``<stem>_overlay.png`` — the image blended with the class colours (:func:`palette`: fixed and
  deterministic, colour ``k`` is the same for class index ``k`` in every image and run), with a legend
  panel on the right listing exactly the classes present in the label map, largest area first, with
  their share of the image area;
* ``<stem>_labels.png`` — the class-index map at the image's own resolution (uint8, or uint16 when the
  vocabulary has more than 255 classes), written by the same ``save_label_png`` as evaluation;
* ``<stem>.json`` — ``vocabulary``; ``pixel_counts`` (one count per vocabulary entry, zeros included,
  in vocabulary order); ``class_scores`` (each class's mean score over the working-resolution image,
  :attr:`SegmentationResult.class_scores`); ``legend`` (the present classes as drawn: index, name, pixels, share, colour);
  ``image_size`` / ``working_size`` (``[height, width]``); ``timing`` in seconds; and the settings.

Each file is written to a temporary name and renamed, so an interrupted run never leaves a half-written
file and never damages what an earlier image (or run) wrote; the JSON is written last. An input that
cannot be read is reported by name and the run continues; the run ends with a one-line summary and
exits with status 1 if any input failed. An empty vocabulary, a missing checkpoint or a checkpoint
whose CLIP differs from a requested ``clip=...`` group stop the run before any image is processed.
Inference is :class:`mrovseg.segmenter.Segmenter`'s, so the Python API gives the same labels.
"""

from __future__ import annotations

import colorsys
import glob
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image, ImageDraw, ImageFont

from mrovseg.config import CONF_DIR

log = logging.getLogger(__name__)

#: The first colours of the palette (Tableau 10); later classes get golden-ratio hues.
_BASE_COLOURS = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


# ---------------------------------------------------------------------------------------- drawing
def palette(num_classes: int) -> np.ndarray:
    """Fixed class colours ``(K, 3)`` uint8: Tableau 10, then golden-ratio hues at varying brightness."""
    colours = list(_BASE_COLOURS[:num_classes])
    for k in range(len(colours), num_classes):
        hue = (k * 0.618033988749895) % 1.0
        sat, val = (0.85, 0.95) if k % 3 == 0 else (0.6, 0.8) if k % 3 == 1 else (0.95, 0.6)
        colours.append(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, val)))
    return np.asarray(colours, dtype=np.uint8).reshape(num_classes, 3)


def blend(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``(1 - alpha) · image + alpha · colour[label]`` as uint8, in row bands (memory O(W) per row)."""
    out = np.empty_like(image)
    a = round(alpha * 256)
    for y in range(0, image.shape[0], 256):
        img = image[y : y + 256].astype(np.uint16)
        col = colours[labels[y : y + 256]].astype(np.uint16)
        out[y : y + 256] = ((img * (256 - a) + col * a + 128) >> 8).astype(np.uint8)
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _short_name(name: str, limit: int = 36) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def render_overlay(
    image: np.ndarray, labels: np.ndarray, legend: Sequence[Any], colours: np.ndarray, alpha: float = 0.5
) -> Image.Image:
    """The image blended with class colours, with a legend panel on its right.

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        labels: ``(H, W)`` class indices.
        legend: Entries with ``index``, ``name`` and ``share`` (:meth:`SegmentationResult.legend`), drawn
            top to bottom in the given order.
        colours: ``(K, 3)`` uint8 palette.
        alpha: Weight of the class colours.

    Returns:
        An RGB image ``max(H, legend height) × (W + legend width)``; the image is at the top left.
    """
    h, w = labels.shape
    font_size = int(np.clip(round(min(h, w) / 28), 11, 40))
    font = _font(font_size)
    pad, line = font_size // 2 + 2, int(font_size * 1.5)
    texts = [f"{_short_name(e.name)}  {100 * e.share:.1f}%" for e in legend]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((probe.textlength(t, font=font) for t in texts), default=0)
    panel_w = int(2 * pad + line + text_w) + pad
    panel_h = 2 * pad + line * len(texts)
    canvas = Image.new("RGB", (w + panel_w, max(h, panel_h)), (255, 255, 255))
    canvas.paste(Image.fromarray(blend(image, labels, colours, alpha)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (entry, text) in enumerate(zip(legend, texts)):
        y = pad + i * line
        box = (w + pad, y + 2, w + pad + line - 4, y + line - 2)
        draw.rectangle(box, fill=tuple(int(c) for c in colours[entry.index]), outline=(0, 0, 0))
        draw.text((w + pad + line + 2, y + (line - font_size) // 2), text, fill=(0, 0, 0), font=font)
    return canvas


# ---------------------------------------------------------------------------------------- files
def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp)`` on a temporary file next to ``path`` (same suffix), then renames it to ``path``."""
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_outputs(
    result: Any, out_dir: Path, stem: str, alpha: float = 0.5, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Writes ``<stem>_labels.png``, ``<stem>_overlay.png`` and then ``<stem>.json``; returns the JSON payload."""
    from mrovseg.lit_module import save_label_png

    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    k = len(result.class_names)
    colours = palette(k)
    legend = result.legend()
    labels_path, overlay_path, json_path = (
        out_dir / f"{stem}_labels.png",
        out_dir / f"{stem}_overlay.png",
        out_dir / f"{stem}.json",
    )
    # render before any file is touched, so a drawing error leaves earlier files of this stem intact
    overlay = render_overlay(result.image, result.labels, legend, colours, alpha)
    atomic_write(labels_path, lambda p: save_label_png(p, result.labels, k))
    atomic_write(overlay_path, lambda p: overlay.save(p))
    timing = dict(result.timing)
    timing["write"] = time.perf_counter() - start
    payload = {
        **(extra or {}),
        "image_size": list(result.image_size),
        "working_size": list(result.working_size),
        "vocabulary": list(result.class_names),
        "pixel_counts": [int(c) for c in result.pixel_counts],
        "class_scores": [float(c) for c in result.class_scores],
        "legend": [
            {
                "index": e.index,
                "name": e.name,
                "pixels": e.pixels,
                "share": e.share,
                "colour": [int(c) for c in colours[e.index]],
            }
            for e in legend
        ],
        "labels_png": labels_path.name,
        "labels_dtype": "uint8" if k <= 255 else "uint16",
        "overlay_png": overlay_path.name,
        "timing": timing,
    }
    atomic_write(json_path, lambda p: p.write_text(json.dumps(payload, indent=2)))
    return payload


# ---------------------------------------------------------------------------------------- inputs
def image_suffixes() -> set[str]:
    """File suffixes Pillow can open (``.jpg``, ``.png``, ``.tif``, ``.webp``, ...)."""
    Image.init()
    return {s.lower() for s in Image.registered_extensions()}


def resolve_inputs(inputs: str | Sequence[str]) -> list[Path]:
    """Expands files, folders (their image files, sorted, not recursive) and glob patterns.

    An explicit file is kept whatever its suffix (it is reported later if it is not an image), as is a
    path that does not exist (reported as failed); duplicates are dropped.

    Raises:
        ValueError: ``inputs`` is empty.
    """
    entries = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs or [])
    if not entries:
        raise ValueError("No inputs: pass inputs=<image file | folder | glob> (or a list [a.jpg,b.png]).")
    suffixes = image_suffixes()
    paths: list[Path] = []
    for entry in entries:
        text = os.path.expanduser(str(entry))
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
            if not found:
                log.warning("No image files in folder %s", path)
            paths += found
        elif path.exists() or not glob.has_magic(text):
            paths.append(path)
        else:
            found = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not found:
                log.warning("No files match %s", text)
            paths += found
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise ValueError(f"No input images found in {list(map(str, entries))}.")
    return unique


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Output names: the file stem, or ``<stem>_<suffix>`` (then ``-2``, ``-3``, ...) when stems collide."""
    counts: dict[str, int] = {}
    for p in paths:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    used: set[str] = set()
    stems = []
    for p in paths:
        stem = p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower() or 'noext'}"
        candidate, n = stem, 1
        while candidate in used:
            n += 1
            candidate = f"{stem}-{n}"
        used.add(candidate)
        stems.append(candidate)
    return stems


# ---------------------------------------------------------------------------------------- run
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


def clip_overrides_of(cfg: DictConfig) -> dict[str, Any]:
    """The ``clip`` entries given on the command line or by a ``clip=<name>`` group (unresolved)."""
    clip = cfg.get("clip")
    if not clip:
        return {}
    return {
        k: v
        for k, v in OmegaConf.to_container(clip, resolve=False).items()
        if not OmegaConf.is_missing(clip, k)
    }


def predict(cfg: DictConfig) -> PredictSummary:
    """Segments every input of a composed ``predict`` config; see the module docstring.

    Raises:
        ValueError, FileNotFoundError: Bad settings (checked before any image is processed).
    """
    from mrovseg.segmenter import Segmenter, resolve_device, resolve_vocabulary

    if not cfg.get("ckpt_path"):
        raise ValueError("ckpt_path is required: pass ckpt_path=<checkpoint written by mrovseg.train>.")
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

    segmenter = Segmenter.from_checkpoint(
        cfg.ckpt_path,
        device=device,
        short_side=cfg.get("short_side"),
        clip_overrides=clip_overrides_of(cfg),
        window_batch=cfg.get("window_batch"),
    )
    t0 = time.perf_counter()
    segmenter.text_embeddings(vocabulary)
    log.info(
        "Vocabulary of %d classes encoded in %.2f s; segmenting %d image(s) on %s into %s",
        len(vocabulary),
        time.perf_counter() - t0,
        len(paths),
        device,
        out_dir,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = PredictSummary(output_dir=out_dir)
    extra = {"checkpoint": str(cfg.ckpt_path), "short_side": segmenter.short_side, "device": str(device)}
    start = time.perf_counter()
    for path, stem in _progress(
        list(zip(paths, output_stems(paths))), enabled=bool(cfg.get("progress", True))
    ):
        try:
            result = segmenter.seg(path, vocabulary, return_scores=False)
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
