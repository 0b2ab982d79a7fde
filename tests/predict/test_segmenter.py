"""The Python API: inputs of any kind and size, vocabularies, the text-embedding cache, results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrovseg.data.image_io import ImageReadError, array_to_uint8_rgb
from mrovseg.data.synthetic import ToyWorld
from mrovseg.data.vocabularies import ADE_150, resolve_vocabulary
from mrovseg.serving.segmenter import Segmenter, resolve_device, to_rgb
from tests.predict.conftest import toy_image

VOCAB = ["background", "red circle", "green square", "blue, navy triangle"]


# ------------------------------------------------------------------ vocabularies
def test_resolve_vocabulary_names_lists_and_files(tmp_path: Path) -> None:
    toy = resolve_vocabulary("toy")
    assert toy == ToyWorld().class_names and len(toy) == 31 and toy[0] == "background"
    assert resolve_vocabulary("ade150") == list(ADE_150)
    assert resolve_vocabulary([" cat ", "sofa, couch"]) == ["cat", "sofa, couch"]
    txt = tmp_path / "words.txt"
    txt.write_text("cat\n\n# a comment\nsofa, couch  # synonyms\n")
    assert resolve_vocabulary(str(txt)) == ["cat", "sofa, couch"]


@pytest.mark.parametrize(
    ("vocabulary", "message"),
    [
        ([], "empty"),
        (["cat", " , "], "entry 1 is empty"),
        (["cat", "dog", "cat"], "appears twice"),
        ("cats", "Unknown vocabulary"),
    ],
)
def test_resolve_vocabulary_errors(vocabulary, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_vocabulary(vocabulary)


# ------------------------------------------------------------------ input conversion
def test_array_to_uint8_rgb_layouts_and_dtypes() -> None:
    rgb = toy_image(0)[:20, :30]
    gray = rgb[..., 0]
    assert np.array_equal(array_to_uint8_rgb(rgb), rgb)
    assert np.array_equal(array_to_uint8_rgb(np.dstack([rgb, np.full_like(gray, 7)])), rgb)  # alpha dropped
    assert np.array_equal(array_to_uint8_rgb(gray), np.dstack([gray] * 3))
    assert np.array_equal(array_to_uint8_rgb(gray[..., None]), np.dstack([gray] * 3))
    assert np.array_equal(array_to_uint8_rgb(rgb.astype(np.uint16) * 257), rgb)  # 16-bit → /257
    assert np.array_equal(array_to_uint8_rgb(rgb / 255.0), rgb)  # float in [0, 1] → ×255
    assert np.array_equal(array_to_uint8_rgb(np.eye(3, dtype=bool))[..., 0], np.eye(3, dtype=np.uint8) * 255)
    with pytest.raises(ValueError, match="channels last"):
        array_to_uint8_rgb(rgb.transpose(2, 0, 1))


def test_to_rgb_pil_modes_match_files(tmp_path: Path) -> None:
    rgb = toy_image(0)[:24, :40]
    pil = Image.fromarray(rgb)
    for mode in ("L", "LA", "RGBA", "P"):
        converted = pil.convert(mode)
        converted.save(tmp_path / f"x_{mode}.png")
        assert np.array_equal(to_rgb(converted), to_rgb(tmp_path / f"x_{mode}.png")), mode
    with pytest.raises(TypeError, match="PIL image or a numpy array"):
        to_rgb(torch.zeros(3, 4, 4))
    with pytest.raises(ImageReadError, match=r"missing\.png"):
        to_rgb(tmp_path / "missing.png")


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


# ------------------------------------------------------------------ segmentation
def test_seg_result_contents(segmenter: Segmenter, varied_vocab: list[str]) -> None:
    image = toy_image(0)
    res = segmenter.segment(image, varied_vocab)
    k = len(varied_vocab)
    assert res.labels.shape == image.shape[:2] and res.labels.dtype == np.int64
    assert res.labels.min() >= 0 and res.labels.max() < k
    assert res.class_names == varied_vocab and res.image_size == image.shape[:2]
    assert res.scores is not None and res.scores.shape == (k, *image.shape[:2])
    assert np.allclose(res.class_scores, res.scores.mean(axis=(1, 2)), atol=1e-6)
    # the label map is the argmax of the scores (same resolution here: short_side=None)
    assert np.array_equal(res.labels, res.scores.argmax(axis=0))
    assert np.array_equal(res.pixel_counts, np.bincount(res.labels.ravel(), minlength=k))
    legend = res.legend()
    present = set(np.unique(res.labels).tolist())
    assert {e.index for e in legend} == present and len(present) == 2
    assert [e.pixels for e in legend] == sorted((e.pixels for e in legend), reverse=True)
    assert sum(e.share for e in legend) == pytest.approx(1.0)
    assert set(res.timing) == {"prepare", "text", "inference", "upsample", "total"}
    assert all(v >= 0 for v in res.timing.values())
    assert segmenter.segment(image, varied_vocab, return_scores=False).scores is None


@pytest.mark.parametrize("size", [(37, 50), (64, 64), (130, 70)])
def test_any_size_gives_labels_at_original_resolution(segmenter: Segmenter, size: tuple[int, int]) -> None:
    image = toy_image(2, *size)  # smaller than, equal to and larger than the 64² window
    res = segmenter.segment(image, VOCAB, return_scores=False)
    assert res.labels.shape == size and res.working_size == size


def test_short_side_resizes_the_working_image_only(tiny_ckpt: Path, varied_vocab: list[str]) -> None:
    seg = Segmenter.from_checkpoint(tiny_ckpt, short_side=48)
    res = seg.segment(toy_image(0), varied_vocab)
    assert res.working_size == (48, 64) and res.scores.shape == (2, 48, 64)
    assert res.labels.shape == (96, 128) and res.labels.max() < 2
    # labels are the argmax of the scores resized to the original resolution
    up = torch.nn.functional.interpolate(torch.from_numpy(res.scores)[None], size=(96, 128), mode="bilinear")
    assert np.array_equal(res.labels, up[0].argmax(0).numpy())


def test_inputs_of_every_kind_agree(segmenter: Segmenter, tmp_path: Path) -> None:
    rgb = toy_image(3, 72, 90)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    ref = segmenter.segment(rgb, VOCAB).scores  # scores, not just labels: exact agreement of the whole map
    variants = {
        "path": tmp_path / "x.png",
        "str path": str(tmp_path / "x.png"),
        "PIL": Image.fromarray(rgb),
        "PIL RGBA": Image.fromarray(rgb).convert("RGBA"),
        "RGBA array": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
        "uint16": rgb.astype(np.uint16) * 257,
        "float": rgb.astype(np.float32) / 255.0,
    }
    for name, image in variants.items():
        assert np.array_equal(segmenter.segment(image, VOCAB).scores, ref), name
    assert not np.array_equal(
        segmenter.segment(rgb[::-1].copy(), VOCAB).scores, ref
    )  # the scores see the image
    gray = rgb[..., 1]
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit grayscale file
    gray_ref = segmenter.segment(gray, VOCAB).scores
    assert np.array_equal(segmenter.segment(tmp_path / "g16.png", VOCAB).scores, gray_ref)
    assert np.array_equal(segmenter.segment(Image.fromarray(gray), VOCAB).scores, gray_ref)


def test_exif_orientation_is_honoured(segmenter: Segmenter, tmp_path: Path) -> None:
    rgb = toy_image(4, 60, 90)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be rotated 90° clockwise for display
    Image.fromarray(rgb).save(tmp_path / "rotated.png", exif=exif)
    upright = np.ascontiguousarray(np.rot90(rgb, k=-1))  # what a viewer shows: (90, 60)
    res = segmenter.segment(tmp_path / "rotated.png", VOCAB)
    assert res.labels.shape == (90, 60)
    assert np.array_equal(res.scores, segmenter.segment(upright, VOCAB).scores)
    with Image.open(tmp_path / "rotated.png") as pil:  # an opened PIL image is turned the same way
        assert np.array_equal(segmenter.segment(pil, VOCAB).scores, res.scores)


def test_text_embeddings_are_computed_once_per_vocabulary(tiny_ckpt: Path, monkeypatch) -> None:
    monkeypatch.setenv("MROVSEG_CACHE", "off")  # the in-memory cache alone; the disk cache has its own tests
    seg = Segmenter.from_checkpoint(tiny_ckpt, short_side=None)
    clip = seg.model.backbone  # its encode_text is the one text-encoding path
    calls = []
    original = clip.encode_text

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    clip.encode_text = counting
    image = toy_image(0, 40, 40)
    first = seg.segment(image, ["cat", "dog"])
    for _ in range(3):
        again = seg.segment(image, ["cat", "dog"])
    assert len(calls) == 1 and again.timing["text"] < first.timing["text"]
    seg.segment(image, ["cat", "dog", "bird"])
    assert len(calls) == 2
    seg.segment(image, ["cat", "dog"])
    assert len(calls) == 2


def test_checkpoint_errors(tmp_path: Path, tiny_ckpt: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        Segmenter.from_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(ValueError, match="trained with CLIP toy-vit-p4-32, but CLIP ViT-B-16 was requested"):
        Segmenter.from_checkpoint(
            tiny_ckpt, clip_overrides={"model_name": "ViT-B-16", "pretrained": "openai"}
        )
