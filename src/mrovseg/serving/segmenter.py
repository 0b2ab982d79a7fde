"""Python API: segment any image with any vocabulary using a trained checkpoint or a training-free model.

    from mrovseg import Segmenter

    seg = Segmenter.from_checkpoint("outputs/train/runs/<run>/checkpoints/last.ckpt")
    seg = Segmenter.from_config("naclip_vitb16")   # or: no checkpoint, CLIP alone (NACLIP, SCLIP, ClearCLIP)
    result = seg("photo.jpg", vocabulary=["cat", "sofa, couch", "window blind"])
    result.labels          # (H, W) int64 class indices at the photo's own resolution
    result.legend()        # classes present, largest first, with their pixel counts and area share

The pipeline is the one evaluation uses, so API, ``python -m mrovseg.predict`` (which calls this class)
and ``mrovseg.eval`` agree pixel for pixel:

1. the input becomes ``uint8 (H, W, 3)`` RGB: paths and PIL images through :mod:`mrovseg.data.image_io` (EXIF
   orientation applied; grayscale, RGBA, palette and 16-bit converted), numpy arrays through ``array_to_uint8_rgb``;
2. the image is resized so its short side is ``short_side`` (:func:`mrovseg.data.transforms.resize_short_side`,
   as evaluation does; ``None`` keeps the native size) and scaled to ``[0, 1]``; an image above
   ``max_pixels`` is downscaled first, or refused (:mod:`mrovseg.serving.pixel_limit`);
3. :func:`mrovseg.model.inference.sliding_window` over ``model.semantic_scores`` (the evaluation's own
   routine) covers it with windows of the train crop (smaller images are padded) and returns per-class
   scores ``(K, h, w)`` at this *working* resolution (``flip=True``: averaged with the mirrored image's);
4. :func:`mrovseg.model.inference.upsample_argmax` resizes the scores bilinearly to the original
   ``(H, W)`` and takes the argmax in row bands (of about :data:`BAND_BYTES` each), so no ``(K, H, W)``
   map at full resolution is ever allocated: beyond the working-resolution scores, memory grows by about
   20 bytes per original pixel (the int64 label map, the overlay; ``tests/predict/test_memory.py``).

Text embeddings are computed once per vocabulary (the CLIP backbone's cache) and reused by every call.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from mrovseg.constants import DEFAULT_EVAL_SHORT_SIDE
from mrovseg.data.image_io import array_to_uint8_rgb, load_image, to_uint8_rgb
from mrovseg.data.transforms import resize_short_side
from mrovseg.data.vocabularies import resolve_vocabulary
from mrovseg.model.inference import refine_scores, sliding_window, upsample_argmax
from mrovseg.serving import compile as inference_compile
from mrovseg.serving.pixel_limit import DEFAULT_MAX_PIXELS, check_limit, load_within, working_short_side
from mrovseg.serving.precision import (
    check_precision,
    precision_context,
    prepare_model,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "ImageInput",
    "LegendEntry",
    "SegmentationResult",
    "Segmenter",
    "resolve_device",
    "resolve_vocabulary",
    "to_rgb",
]

log = logging.getLogger(__name__)

#: Size of one ``(rows, W, K)`` float32 band of the full-resolution upsampling (:func:`upsample_argmax`
#: works in row bands); the row count is chosen so a band stays near this whatever K and W are.
BAND_BYTES = 16 * 2**20

#: What :meth:`Segmenter.segment` accepts: a path, a PIL image or a numpy array (channels last).
ImageInput = Union[str, os.PathLike, Image.Image, np.ndarray]  # noqa: UP007  (a runtime alias)


# ---------------------------------------------------------------------------------------- inputs
def to_rgb(image: ImageInput) -> np.ndarray:
    """Converts any accepted image input to ``uint8 (H, W, 3)`` RGB (see the module docstring).

    Raises:
        mrovseg.data.image_io.ImageReadError: A path that is missing or not a readable image.
        ValueError: A numpy array of an unsupported shape or dtype.
        TypeError: Any other kind of object.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return to_uint8_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, np.ndarray):
        return array_to_uint8_rgb(image)
    raise TypeError(f"Expected a path, a PIL image or a numpy array, got {type(image).__name__}.")


# ---------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class LegendEntry:
    """A class present in a label map: its index, name, pixel count and share of the image area."""

    index: int
    name: str
    pixels: int
    share: float


@dataclass
class SegmentationResult:
    """The segmentation of one image.

    Attributes:
        labels: ``(H, W)`` int64 class indices into ``class_names``, at the original resolution of the
            input (after EXIF orientation).
        class_names: The vocabulary, in index order.
        pixel_counts: ``(K,)`` int64 pixels of each class in ``labels`` (zeros included).
        class_scores: ``(K,)`` float32 mean per-class score over the working-resolution image: the
            model's soft "how much of the image is this class" (scores are mask-weighted class
            probabilities and need not sum to one per pixel).
        scores: ``(K, h, w)`` float32 per-class scores at the *working* resolution ``(h, w)`` (after the
            ``short_side`` resize, before upsampling), or None when not requested.
        image: ``uint8 (H, W, 3)`` RGB input as the model saw it before resizing (for overlays); smaller
            than ``labels`` when the input was downscaled for being above the pixel limit.
        working_size: ``(h, w)`` the windows ran on.
        timing: seconds per stage: ``prepare`` (decode, convert, resize), ``text`` (text embeddings;
            0 when cached), ``inference`` (sliding windows), ``upsample`` (resize + argmax + counts)
            and ``total``.
    """

    labels: np.ndarray
    class_names: list[str]
    pixel_counts: np.ndarray
    class_scores: np.ndarray
    scores: np.ndarray | None
    image: np.ndarray
    working_size: tuple[int, int]
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the input and of ``labels``."""
        return tuple(self.labels.shape)  # type: ignore[return-value]

    def legend(self) -> list[LegendEntry]:
        """Exactly the classes present in ``labels``, largest area first (ties: lower index first)."""
        total = max(1, int(self.labels.size))
        present = [k for k in np.flatnonzero(self.pixel_counts)]
        present.sort(key=lambda k: (-int(self.pixel_counts[k]), int(k)))
        return [
            LegendEntry(
                int(k), self.class_names[k], int(self.pixel_counts[k]), int(self.pixel_counts[k]) / total
            )
            for k in present
        ]


# ---------------------------------------------------------------------------------------- segmenter
class Segmenter:
    """Open-vocabulary segmentation of single images with a trained model: the model and its text
    encoder only (no training machinery).

    Args:
        model: A segmentation model ending in ``semantic_scores(windows, text)`` with its frozen CLIP as
            ``model.backbone`` (MROVSeg, OVSeg, MGCA, dense CLIP).
        templates: Prompt templates of the text embeddings (the ones the model was trained with).
        window: Sliding-window side (the train crop).
        window_overlap: Overlap fraction of neighbouring windows.
        window_batch: Windows per forward pass.
        device: ``cpu``, ``cuda``, ``cuda:<i>`` or ``auto``.
        short_side: Resize the image so its short side is this before the sliding windows (the
            evaluation protocol; the paper's 640). ``None`` keeps the native resolution (e.g. for the
            toy model on toy scenes, which were evaluated as rendered).
        precision: ``fp32`` (default here: the model is used as given), ``bf16`` or ``auto`` (bf16 where
            the device runs it natively), for the image and the text towers; see
            :mod:`mrovseg.serving.precision`. ``bf16`` converts the model's CLIP weights in place. Scores
            and text embeddings are float32 whatever the precision; :attr:`precision` is the one used.
        max_pixels: Images above this many pixels are segmented downscaled (labels at full size) or, with
            ``on_large="refuse"``, refused; None: no limit. The working image is also kept under it and
            under a score budget (:mod:`mrovseg.serving.pixel_limit`).
        on_large: ``downscale`` (default) or ``refuse``.
        compile: ``torch.compile`` the forward with Inductor's freezing (:mod:`mrovseg.serving.compile`).
        flip: Test-time augmentation: average the scores with the horizontally flipped image's (2× the
            forwards; :func:`~mrovseg.model.inference.sliding_window`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        templates: Sequence[str],
        window: int,
        window_overlap: float = 1 / 3,
        window_batch: int = 4,
        device: str | torch.device = "cpu",
        short_side: int | None = DEFAULT_EVAL_SHORT_SIDE,
        precision: str = "fp32",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        on_large: str = "downscale",
        compile: bool = False,
        flip: bool = False,
    ) -> None:
        if short_side is not None and int(short_side) < 1:
            raise ValueError(f"short_side must be a positive integer or None, got {short_side}.")
        if int(window) < 1 or int(window_batch) < 1:
            raise ValueError(f"window and window_batch must be positive, got {window} and {window_batch}.")
        self.max_pixels, self.on_large = check_limit(max_pixels, on_large)
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device, model=model)
        self.model = prepare_model(model.to(self.device).eval(), self.precision)
        if compile:
            inference_compile.compile_for_inference(self.model)
        self.templates = list(templates)
        self.window = int(window)
        self.window_overlap = float(window_overlap)
        self.window_batch = int(window_batch)
        self.flip = bool(flip)
        self.short_side = int(short_side) if short_side is not None else None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        clip_pretrained: str | None = None,
        short_side: int | str | None = "auto",
        clip_overrides: dict[str, Any] | None = None,
        window_batch: int | None = None,
        precision: str = "auto",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        on_large: str = "downscale",
        compile: bool = False,
        flip: bool | None = None,
    ) -> Segmenter:
        """Rebuilds the model stored in a checkpoint of ``mrovseg.train`` (the file is read once).

        Args:
            path: The checkpoint (its build config names the CLIP and the architecture), or a Hub folder.
            device: ``cpu``, ``cuda``, ``cuda:<i>`` or ``auto``.
            clip_pretrained: CLIP weight source replacing the checkpoint's (an open_clip tag or a local
                file, for offline machines); None keeps the checkpoint's.
            short_side: See the class docstring; ``"auto"`` (default) takes the evaluation resize the
                model was trained with (stored in the checkpoint; 640 for the paper's models, None
                for the toy world).
            clip_overrides: Entries merged into the checkpoint's CLIP config. If it names a
                ``model_name`` that differs from the checkpoint's CLIP, loading stops with an error
                before any model is built.
            window_batch: Windows per forward pass; None keeps the checkpoint's.
            precision: ``auto`` (default: bf16 where the device runs it natively, else fp32), ``fp32``
                or ``bf16``; see the class docstring.
            max_pixels, on_large, compile, flip: See the class docstring (flip None: the checkpoint's).

        Raises:
            FileNotFoundError: The checkpoint does not exist.
            ValueError: The file is not an mrovseg checkpoint, or its CLIP differs from the requested one.
        """
        from mrovseg.serving.hub_format import read_model
        from mrovseg.training.checkpoint import check_clip_matches, load_module, stored_short_side

        device = resolve_device(device)  # fail on an unavailable GPU before reading anything
        precision = check_precision(precision)  # and on a bad precision (auto is resolved for the model)
        check_limit(max_pixels, on_large)
        overrides = dict(clip_overrides or {})
        if clip_pretrained is not None:
            overrides["pretrained"] = str(clip_pretrained)
        ckpt = read_model(path)  # a .ckpt, or a Hub folder: safetensors + JSON
        if overrides.get("model_name") is not None:
            check_clip_matches(ckpt, str(overrides["model_name"]), source=path)
        module = load_module(ckpt, clip_overrides=overrides or None, source=path)
        if module.model.backbone.pretrained is None:
            log.warning(
                "The CLIP of %s has random weights (pretrained=null): checkpoints do not store CLIP weights, "
                "so every load draws a new random CLIP and predictions differ between loads. Pass the CLIP "
                "weights the model was trained with: clip_pretrained=/path/to/weights (CLI: clip.pretrained=...).",
                path,
            )
        if short_side == "auto":
            short_side = stored_short_side(ckpt)
        return cls.from_module(
            module, window_batch, device=device, short_side=short_side, precision=precision,
            max_pixels=max_pixels, on_large=on_large, compile=compile, flip=flip,
        )  # fmt: skip

    @classmethod
    def from_module(cls, module: Any, window_batch: int | None = None, **options: Any) -> Segmenter:
        """The model, templates and sliding-window settings of a built module (``window_batch``: None
        keeps the module's); ``options`` as the constructor's."""
        hp = module.hparams
        batch = window_batch if window_batch is not None else hp.window_batch
        options["flip"] = bool(hp.get("flip", False)) if options.get("flip") is None else options["flip"]
        return cls(module.model, module.templates, hp.window, hp.window_overlap, batch, **options)

    @classmethod
    def from_pretrained(
        cls, name: str | os.PathLike, revision: str | None = None, **options: Any
    ) -> Segmenter:
        """A model shared as a Hub folder (``python -m mrovseg.hub``): a local folder or a Hugging Face repo id
        ``owner/name`` at ``revision``, through huggingface_hub's cache (``HF_HUB_OFFLINE=1``: cache only).
        Reads safetensors and JSON only. ``options``: :meth:`from_checkpoint`'s."""
        from mrovseg.serving.hub_format import hub_folder

        return cls.from_checkpoint(hub_folder(name, revision), **options)

    @classmethod
    def from_config(cls, config: Any, overrides: Sequence[str] = (), **options: Any) -> Segmenter:
        """A training-free model (dense CLIP, SCLIP, ClearCLIP, NACLIP) with no checkpoint, from an experiment
        name (``naclip_vitb16``) or a config, Hydra ``overrides`` and :meth:`from_checkpoint`'s options:
        :func:`mrovseg.serving.from_config.segmenter_from_config`."""
        from mrovseg.serving.from_config import segmenter_from_config

        device = resolve_device(options.pop("device", "cpu"))  # fail on an unavailable GPU or a bad
        precision = resolve_precision(options.pop("precision", "auto"), device)  # precision before building
        return segmenter_from_config(cls, config, overrides, device=device, precision=precision, **options)

    # ------------------------------------------------------------------ text
    def text_embeddings(self, vocabulary: str | Sequence[str]) -> tuple[list[str], torch.Tensor]:
        """Class names and their text embeddings ``(K, E)`` on the device (computed once per vocabulary)."""
        names = resolve_vocabulary(vocabulary)
        with precision_context(self.precision, self.device):
            text = self.model.backbone.encode_vocabulary(names, self.templates)
        return names, text.to(self.device)

    @torch.no_grad()
    def scores(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Per-class float32 scores ``(K, h, w)`` of one working image ``(3, h, w)`` by sliding windows
        (then the model's own per-image step, :func:`~mrovseg.model.inference.refine_scores`)."""
        with precision_context(self.precision, self.device):
            scores = sliding_window(
                lambda windows: self.model.semantic_scores(windows, text),
                x,
                self.window,
                self.window_overlap,
                self.window_batch,
                flip=self.flip,
            ).float()
            return refine_scores(self.model, x, scores)

    # ------------------------------------------------------------------ images
    def working_image(self, rgb: np.ndarray, num_classes: int = 1) -> torch.Tensor:
        """``uint8 (H, W, 3)`` → resized (short side, within the pixel limit) ``(3, h, w)`` float in [0, 1]."""
        short = working_short_side(
            rgb.shape[:2], self.short_side, num_classes, self.max_pixels, self.on_large
        )
        rgb = resize_short_side(rgb, short)
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)
        return x.float().div_(255.0)

    @torch.no_grad()
    def segment(
        self, image: ImageInput, vocabulary: str | Sequence[str], return_scores: bool = True
    ) -> SegmentationResult:
        """Segments one image.

        Args:
            image: A path, a PIL image or a numpy array (``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``;
                ``uint8``, ``uint16``, bool or float — see :func:`mrovseg.data.image_io.array_to_uint8_rgb`).
            vocabulary: Class names or a vocabulary name (see :func:`resolve_vocabulary`).
            return_scores: Keep the ``(K, h, w)`` working-resolution scores in the result (they can be
                large: 4·K·h·w bytes).

        Returns:
            The result; ``labels`` has the input's own size.
        """
        start = time.perf_counter()
        rgb, (h, w) = load_within(image, to_rgb, self.max_pixels, self.on_large)  # (h, w): the input's
        x = self.working_image(rgb, len(resolve_vocabulary(vocabulary)))
        t_prepare = time.perf_counter()
        names, text = self.text_embeddings(vocabulary)
        t_text = time.perf_counter()
        scores = self.scores(x, text)  # (K, h, w)
        working_size = (int(x.shape[1]), int(x.shape[2]))
        del x  # not needed past the windows
        self._sync()
        t_infer = time.perf_counter()
        rows = int(np.clip(BAND_BYTES // (4 * len(names) * w), 8, 256))  # bands of ~BAND_BYTES per temporary
        labels = upsample_argmax(scores, (h, w), chunk_rows=rows).cpu().numpy()  # (H, W) int64
        counts = np.bincount(labels.ravel(), minlength=len(names)).astype(np.int64)
        class_scores = scores.mean(dim=(1, 2)).float().cpu().numpy()
        kept = scores.float().cpu().numpy() if return_scores else None
        end = time.perf_counter()
        timing = {
            "prepare": t_prepare - start,
            "text": t_text - t_prepare,
            "inference": t_infer - t_text,
            "upsample": end - t_infer,
            "total": end - start,
        }
        return SegmentationResult(
            labels=labels,
            class_names=names,
            pixel_counts=counts,
            class_scores=class_scores,
            scores=kept,
            image=rgb,
            working_size=working_size,
            timing=timing,
        )

    __call__ = segment

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
