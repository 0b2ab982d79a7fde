"""The demo's session: one :class:`~mrovseg.serving.segmenter.Segmenter` call per click, its outputs
written as ``predict`` writes them, and the helpers the page uses (vocabulary parsing, legends,
example images). Knows nothing of Gradio; :mod:`mrovseg.demo.page` imports it, never the reverse."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# --- what the demo shares with predict (one place, so a move of these names is one edit here) ---
from mrovseg.data.vocabularies import VOCABULARIES, parse_vocabulary_text, resolve_vocabulary
from mrovseg.model.class_names import split_synonyms
from mrovseg.serving.outputs import write_outputs
from mrovseg.serving.overlay import palette, render_overlay
from mrovseg.serving.segmenter import SegmentationResult, Segmenter, to_rgb

log = logging.getLogger(__name__)

#: The benchmark vocabularies offered in the dropdown (``toy``: the default experiment's world).
BENCHMARK_VOCABULARIES = ("toy", *VOCABULARIES)


class DemoInputError(ValueError):
    """Input the page reports in words (empty vocabulary, too many classes, not an image)."""


#: An absolute file path (POSIX or Windows) in a message: its folders, then the file name.
_PATH = re.compile(r"(?:[A-Za-z]:)?[\\/](?:[^\s'\"\\/:]+[\\/])+([^\s'\"\\/:]*)")


def without_paths(text: str) -> str:
    """``text`` with every absolute path cut to its file name: messages shown on the page never name
    the server's folders (Gradio's upload folder, the output folder)."""
    return _PATH.sub(lambda m: m.group(1) or "", text)


# ---------------------------------------------------------------------------------------- inputs
def parse_vocabulary(text: str, max_classes: int) -> list[str]:
    """Class names from the vocabulary box: one class per line, synonyms after commas, ``#`` comments.

    Raises:
        DemoInputError: No class, more than ``max_classes`` classes, or an entry
            :func:`resolve_vocabulary` rejects (a duplicate, a line of commas only).
    """
    names = parse_vocabulary_text(text)
    if not names:
        raise DemoInputError("The vocabulary is empty: type one class per line (synonyms after commas).")
    if len(names) > max_classes:
        raise DemoInputError(
            f"The vocabulary has {len(names)} classes; this demo accepts at most {max_classes} "
            f"(demo.max_classes)."
        )
    try:
        return resolve_vocabulary(names)
    except ValueError as err:
        raise DemoInputError(str(err)) from err


def vocabulary_warnings(
    names: Sequence[str], tokenizer: Callable[..., Any], templates: Sequence[str], shown: int = 5
) -> list[str]:
    """Warnings about a vocabulary the model accepts but may not read as meant.

    * A synonym whose prompt (with the longest template) has more tokens than the tokenizer's context
      length (77 for CLIP): the tokenizer cuts the prompt there, so CLIP never reads the rest.
    * Entries equal up to case, spacing and synonym order (``Cat`` and ``cat``): CLIP's tokenizer
      lower-cases text, so they get the same embedding and tie.

    Args:
        names: The vocabulary (entries with comma-separated synonyms).
        tokenizer: The backbone's (``open_clip``'s: ``tokenizer(texts, context_length=n)`` → ``(P, n)``
            tokens, padding 0, with a ``context_length``).
        templates: The prompt templates (``"a photo of a {}."``).
        shown: At most this many names are listed in one warning.
    """
    out = []
    limit = int(getattr(tokenizer, "context_length", 77))
    synonyms = sorted({syn for name in names for syn in split_synonyms(name)})
    if synonyms and templates:

        def lengths(texts: list[str]) -> list[int]:  # tokens up to limit + 1: more than limit = cut
            return [int(n) for n in (tokenizer(texts, context_length=limit + 1) != 0).sum(dim=-1)]

        template_lengths = lengths([t.replace("{}", "") for t in templates])
        longest = templates[template_lengths.index(max(template_lengths))]
        cut = [syn for syn, n in zip(synonyms, lengths([longest.format(s) for s in synonyms])) if n > limit]
        if cut:
            listed = ", ".join(repr(c[:60] + ("…" if len(c) > 60 else "")) for c in cut[:shown])
            more = f" and {len(cut) - shown} more" if len(cut) > shown else ""
            out.append(
                f"{len(cut)} class name(s) are longer than CLIP reads ({limit} tokens with the prompt "
                f"{longest!r}); the end of each is cut off: {listed}{more}. Shorten them."
            )
    first: dict[frozenset[str], str] = {}
    for name in names:
        key = frozenset(" ".join(syn.split()).casefold() for syn in split_synonyms(name))
        if key in first:
            out.append(
                f"{first[key]!r} and {name!r} are the same class up to case (CLIP lower-cases text): "
                "they get the same embedding and tie. Keep one of them."
            )
        else:
            first[key] = name
    return out


def benchmark_names(name: str) -> str:
    """A benchmark vocabulary as the box shows it: one class per line."""
    return "\n".join(resolve_vocabulary(name))


def load_image(path: str | os.PathLike, max_side: int) -> tuple[str | np.ndarray, str]:
    """The image to segment and a notice: the file itself, or a resized copy if it is too large.

    Returns:
        ``(image, notice)``: the path unchanged (so the labels equal ``predict``'s on that file) and an
        empty notice; or, when the long side exceeds ``max_side``, the ``uint8`` RGB array resized to
        ``max_side`` and a notice saying so.

    Raises:
        DemoInputError: The file is not an image Pillow can read.
    """
    from PIL import Image

    try:
        rgb = to_rgb(path)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        reason = without_paths(str(err))
        raise DemoInputError(f"{Path(path).name} is not an image this demo can read ({reason}).") from err
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return str(path), ""
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.array(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
    notice = (
        f"The image is {w}×{h} pixels, larger than this demo's limit of {max_side} on the long side "
        f"(demo.max_side): it was resized to {size[0]}×{size[1]} before segmenting."
    )
    return small, notice


# ---------------------------------------------------------------------------------------- outputs
@dataclass
class DemoOutput:
    """One segmentation as the page shows it."""

    result: SegmentationResult
    overlay: np.ndarray
    files: list[str]
    payload: dict[str, Any]
    notices: list[str] = field(default_factory=list)

    def table(self) -> list[list[Any]]:
        """Rows ``[class, area share %, mean score]`` of the classes present, largest first."""
        scores = self.result.class_scores
        return [
            [e.name, round(100 * e.share, 2), round(float(scores[e.index]), 4)] for e in self.result.legend()
        ]

    def legend_html(self) -> str:
        """The legend as HTML: a colour swatch, the name and the area share of each class present."""
        return legend_html(self.result)

    def timing_text(self) -> str:
        """``prepare 0.01 s · text 0.00 s · inference 0.21 s · upsample 0.01 s · write 0.02 s · total 0.25 s``."""
        timing = self.payload.get("timing", {})
        order = ("prepare", "text", "inference", "upsample", "write", "total")
        return " · ".join(f"{k} {timing[k]:.2f} s" for k in order if k in timing)


def legend_html(result: SegmentationResult) -> str:
    """HTML list of the classes present (``predict``'s palette), with ``data-class`` attributes."""
    from html import escape

    colours = palette(len(result.class_names))
    items = []
    for e in result.legend():
        r, g, b = (int(c) for c in colours[e.index])
        items.append(
            f'<li class="legend-entry" data-class="{escape(e.name)}" style="list-style:none;margin:2px 0">'
            f'<span style="display:inline-block;width:14px;height:14px;background:rgb({r},{g},{b});'
            f'border:1px solid #000;margin-right:6px;vertical-align:middle"></span>'
            f'<span class="legend-name">{escape(e.name)}</span> — {100 * e.share:.1f}%</li>'
        )
    return f'<ul class="legend" style="padding:0;margin:0">{"".join(items)}</ul>'


def reblend(result: SegmentationResult, alpha: float) -> np.ndarray:
    """The overlay of a kept result at another opacity (no model call)."""
    colours = palette(len(result.class_names))
    return np.asarray(render_overlay(result.image, result.labels, result.legend(), colours, float(alpha)))


# ---------------------------------------------------------------------------------------- session
class DemoSession:
    """The demo's logic, free of Gradio: a segmenter, limits, and a folder for downloads.

    Args:
        segmenter: The model.
        max_side: Longer images are resized to this long side (with a notice).
        max_classes: The largest vocabulary accepted.
        output_root: Where each segmentation's files go (one sub-folder each); a temporary folder if None.
        extra: Entries added to every JSON (the checkpoint, the device, ...), as ``predict`` adds them.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        max_side: int = 2048,
        max_classes: int = 1000,
        output_root: str | os.PathLike | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.max_side = int(max_side)
        self.max_classes = int(max_classes)
        self.output_root = Path(output_root or tempfile.mkdtemp(prefix="mrovseg-demo-"))
        self.extra = dict(extra or {})
        self.count = 0

    def segment(self, image_path: str | None, vocabulary_text: str, alpha: float = 0.5) -> DemoOutput:
        """Segments an uploaded file with the words of the vocabulary box.

        Raises:
            DemoInputError: No image, not an image, or a bad vocabulary (checked before the model runs).
        """
        if not image_path:
            raise DemoInputError("No image: upload one or pick an example first.")
        names = parse_vocabulary(vocabulary_text, self.max_classes)
        backbone = self.segmenter.model.backbone
        warnings = vocabulary_warnings(names, backbone.tokenizer, self.segmenter.templates)
        image, notice = load_image(image_path, self.max_side)
        result = self.segmenter.segment(image, names, return_scores=False)
        self.count += 1
        stem = Path(image_path).stem or "image"
        out_dir = self.output_root / f"{self.count:05d}"
        extra = {"image": Path(image_path).name, **self.extra, "short_side": self.segmenter.short_side}
        payload = write_outputs(result, out_dir, stem, float(alpha), extra)
        files = [str(out_dir / payload["labels_png"]), str(out_dir / f"{stem}.json")]
        overlay = np.asarray(_read_rgb(out_dir / payload["overlay_png"]))
        return DemoOutput(result, overlay, files, payload, [*warnings, *([notice] if notice else [])])


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def example_images(folder: Path, count: int = 3, size: tuple[int, int] = (480, 640)) -> list[str]:
    """Writes ``count`` toy-world scenes (``size`` = (H, W)) as PNG files and returns their paths."""
    from PIL import Image

    from mrovseg.data.synthetic import SceneConfig, ToyWorld, render_scene, scene_rng

    folder.mkdir(parents=True, exist_ok=True)
    cfg = SceneConfig(height=size[0], width=size[1], num_objects=(4, 8))
    paths = []
    for i in range(count):
        path = folder / f"toy_scene_{i}.png"
        if not path.is_file():
            scene = render_scene(scene_rng(0, "demo", i), ToyWorld(), cfg)
            Image.fromarray((scene.image * 255).round().astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def default_vocabulary(segmenter: Segmenter, setting: str) -> str:
    """The vocabulary box's first content: ``auto`` = ``toy`` for a toy CLIP, else ``ade150``."""
    if setting != "auto":
        return setting
    return "toy" if str(segmenter.model.backbone.model_name).startswith("toy") else "ade150"
