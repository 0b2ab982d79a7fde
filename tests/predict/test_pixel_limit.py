"""The pixel limit of predict and ``Segmenter`` (issue 28, item 3): an image above ``max_pixels`` is read
from its header, decoded downscaled and segmented with labels at its own size (a log line says so), or
refused before it is decoded; the working image stays under the limit and a score budget."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from mrovseg.constants import REPO_ROOT
from mrovseg.data.image_io import ImageReadError, image_size, load_image, load_label
from mrovseg.predict import predict
from mrovseg.serving import pixel_limit
from mrovseg.serving.outputs import write_outputs
from mrovseg.serving.overlay import blend, palette
from mrovseg.serving.pixel_limit import ImageTooLargeError, check_limit
from mrovseg.serving.segmenter import Segmenter
from tests.predict.conftest import toy_image

VOCAB = ["red circle", "blue square"]


def limited(segmenter: Segmenter, **kwargs) -> Segmenter:
    """A segmenter on the shared tiny model (and its precision) with other limits."""
    kwargs.setdefault("short_side", None)
    kwargs.setdefault("precision", getattr(segmenter, "precision", "fp32"))
    return Segmenter(
        segmenter.model,
        segmenter.templates,
        segmenter.window,
        segmenter.window_overlap,
        segmenter.window_batch,
        device="cpu",
        **kwargs,
    )


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    Image.fromarray(toy_image(0)).save(path)  # 128×96
    return path


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mrovseg.serving.pixel_limit"]


# ---------------------------------------------------------------------------------------- reading
def test_image_size_reads_the_header_with_the_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown 30 wide, 50 high
    path = tmp_path / "turned.jpg"
    Image.fromarray(toy_image(0, 30, 50)).save(path, exif=exif)
    assert image_size(path) == (50, 30) == load_image(path).shape[:2]
    assert image_size(path, exif_transpose=False) == (30, 50)
    small = load_image(path, max_pixels=600)  # decoded downscaled, then turned like the full image
    assert small.shape[0] * small.shape[1] <= 600 and small.shape[0] > small.shape[1]


@pytest.mark.parametrize("suffix", [".jpg", ".png", "16bit.png"])
def test_load_image_decodes_a_large_file_downscaled(tmp_path: Path, suffix: str) -> None:
    full = np.asarray(Image.fromarray(toy_image(0)).resize((800, 600), Image.Resampling.BILINEAR))
    path = tmp_path / f"big{suffix}"
    if suffix == "16bit.png":
        Image.fromarray(full[..., 0].astype(np.uint16) * 257).save(path)
        full = np.repeat(full[..., :1], 3, axis=2)
    else:
        Image.fromarray(full).save(path, **({"quality": 95} if suffix == ".jpg" else {}))
    small = load_image(path, max_pixels=30_000)
    assert small.dtype == np.uint8 and small.shape == (150, 200, 3)
    expected = np.asarray(Image.fromarray(load_image(path)).resize((200, 150), Image.Resampling.BILINEAR))
    assert np.abs(small.astype(int) - expected).mean() < 4  # the same picture
    assert load_image(path, max_pixels=480_000).shape == (600, 800, 3)  # at the limit: as is


def test_decompression_bombs_are_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for read in (image_size, load_image, lambda p: load_image(p, max_pixels=100)):
        with pytest.raises(ImageReadError, match=r"refused image .*bomb.png: Image size \(10000 pixels\)"):
            read(path)


# ---------------------------------------------------------------------------------------- segmenter
def test_an_image_above_the_limit_is_segmented_downscaled(
    segmenter: Segmenter, scene: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        result = limited(segmenter, max_pixels=3000).segment(scene, VOCAB, return_scores=False)
    assert result.labels.shape == (96, 128) and result.labels.dtype == np.int64
    assert int(result.pixel_counts.sum()) == 96 * 128
    assert result.image.shape == (47, 63, 3) and result.working_size == (47, 63)
    assert _messages(caplog) == [
        "scene.png is 128×96 = 12,288 px, above max_pixels = 3,000 px: segmenting it downscaled to 63×47; "
        "the labels are upsampled to 128×96 (on_large=refuse refuses such images instead)."
    ]
    payload = write_outputs(result, tmp_path / "out", "scene")
    assert load_label(tmp_path / "out" / "scene_labels.png").shape == (96, 128)
    assert payload["image_size"] == [96, 128] and payload["working_size"] == [47, 63]
    overlay = np.asarray(Image.open(tmp_path / "out" / "scene_overlay.png").convert("RGB"))
    rows, cols = ((np.arange(47) + 0.5) * 96 / 47).astype(int), ((np.arange(63) + 0.5) * 128 / 63).astype(int)
    drawn = blend(result.image, result.labels[np.ix_(rows, cols)], palette(2), 0.5)
    np.testing.assert_array_equal(overlay[:47, :63], drawn)  # at the downscaled size, labels sampled to it


def test_arrays_above_the_limit_too(segmenter: Segmenter, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        result = limited(segmenter, max_pixels=3000).segment(toy_image(0), VOCAB, return_scores=False)
    assert result.labels.shape == (96, 128) and result.image.shape[:2] == (47, 63)
    assert _messages(caplog)[0].startswith("The image is 128×96 = 12,288 px, above max_pixels")


def test_refused_before_it_is_decoded(
    segmenter: Segmenter, scene: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ImageTooLargeError) as err:
        limited(segmenter, max_pixels=3000, on_large="refuse").segment(scene, VOCAB)
    assert str(err.value) == (
        "scene.png is 128×96 = 12,288 px, more than max_pixels = 3,000 px, and on_large=refuse: downscale it "
        "first, raise max_pixels, or set on_large=downscale to segment it at a lower resolution (the labels "
        "keep the full size)."
    )


def test_under_the_limit_nothing_changes(segmenter: Segmenter, scene: Path) -> None:
    unlimited = limited(segmenter, max_pixels=None).segment(scene, VOCAB, return_scores=False)
    at_limit = limited(segmenter, max_pixels=96 * 128).segment(scene, VOCAB, return_scores=False)
    np.testing.assert_array_equal(unlimited.labels, at_limit.labels)
    assert at_limit.working_size == (96, 128)


def test_the_working_image_stays_under_the_score_budget(
    segmenter: Segmenter, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pixel_limit, "SCORE_BYTES", 4 * len(VOCAB) * 2000)  # 2,000 working pixels
    with caplog.at_level(logging.WARNING):
        result = limited(segmenter, max_pixels=None).segment(toy_image(0), VOCAB, return_scores=False)
    h, w = result.working_size
    assert h * w <= 2100 and h == 38 and result.labels.shape == (96, 128)
    assert _messages(caplog) == [
        "a working image of 128×96 (short side 96) would need 0.0 GiB of scores for 2 classes: segmenting at "
        "short side 38 instead (on_large=refuse refuses instead)."
    ]
    with pytest.raises(ImageTooLargeError, match="too large to segment as asked: a working image of 128×96"):
        limited(segmenter, max_pixels=None, on_large="refuse").segment(toy_image(0), VOCAB)


def test_a_short_side_that_enlarges_a_strip_is_kept_under_the_limit(
    segmenter: Segmenter, caplog: pytest.LogCaptureFixture
) -> None:
    strip = toy_image(0, 8, 400)  # 3,200 px; short side 64 would make it 64×3200
    with caplog.at_level(logging.WARNING):
        result = limited(segmenter, max_pixels=100_000, short_side=64).segment(
            strip, VOCAB, return_scores=False
        )
    h, w = result.working_size
    assert h * w <= 100_000 and result.labels.shape == (8, 400)
    assert "and is above max_pixels = 100,000 px" in _messages(caplog)[0]


@pytest.mark.parametrize("value", [0, -5, "many", True, 1e-3])
def test_bad_limits_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="max_pixels must be a positive number of pixels or null"):
        check_limit(value, "downscale")
    with pytest.raises(ValueError, match="on_large must be 'downscale' or 'refuse', got 'shrink'"):
        check_limit(None, "shrink")
    assert (
        check_limit("40e6", "refuse") == (40_000_000, "refuse") and check_limit(None, "downscale")[0] is None
    )


# ---------------------------------------------------------------------------------------- predict
def test_predict_downscales_or_refuses(
    make_predict_cfg, scene: Path, caplog: pytest.LogCaptureFixture
) -> None:
    vocab = "[" + ",".join(f'"{n}"' for n in VOCAB) + "]"
    with caplog.at_level(logging.WARNING):
        summary = predict(make_predict_cfg(f"inputs={scene}", f"vocabulary={vocab}", "max_pixels=3000"))
    assert summary.ok == ["scene"] and not summary.failed
    meta = json.loads((summary.output_dir / "scene.json").read_text())
    assert meta["image_size"] == [96, 128] and meta["working_size"] == [47, 63]
    assert any("above max_pixels = 3,000 px: segmenting it downscaled" in m for m in _messages(caplog))

    out = summary.output_dir.parent / "refused"
    cfg = make_predict_cfg(f"inputs={scene}", f"vocabulary={vocab}", "max_pixels=3000", "on_large=refuse")
    cfg.output_dir = str(out)
    summary = predict(cfg)
    assert summary.ok == [] and list(summary.failed) == [str(scene)]
    assert summary.failed[str(scene)].startswith("ImageTooLargeError: scene.png is 128×96 = 12,288 px")
    assert not list(out.glob("scene*"))
    with pytest.raises(ValueError, match="on_large must be"):
        predict(make_predict_cfg(f"inputs={scene}", f"vocabulary={vocab}", "on_large=shrink"))


PROBE = """
import json, resource, sys, time
import numpy as np, torch
from pathlib import Path
from PIL import Image
from mrovseg.serving.outputs import write_outputs
from mrovseg.serving.overlay import blend, palette
from mrovseg.serving.segmenter import Segmenter

torch.set_num_threads(1)
ckpt, big, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
seg = Segmenter.from_checkpoint(ckpt, short_side=None, precision="fp32", max_pixels=500_000)
small = np.asarray(Image.open(big).resize((200, 150)))
peaks = {}
for name, image in (("small", small), ("big", big)):
    result = seg.segment(image, "toy", return_scores=False)
    write_outputs(result, out, name)
    del result
    peaks[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("PEAKS " + json.dumps(peaks))
"""


def test_peak_memory_of_a_6000x4000_photo_is_a_few_bytes_per_pixel(tiny_ckpt: Path, tmp_path: Path) -> None:
    """Without the limit its working scores alone would be 31 classes × 24 MP × 4 B = 3 GB."""
    big = tmp_path / "photo.jpg"
    Image.fromarray(toy_image(0)).resize((6000, 4000), Image.Resampling.BILINEAR).save(big, quality=90)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tiny_ckpt), str(big), str(tmp_path / "out")],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    peaks = json.loads(proc.stdout.split("PEAKS ", 1)[1])
    per_pixel = (peaks["big"] - peaks["small"]) / (6000 * 4000)
    assert per_pixel < 32, f"{per_pixel:.1f} B/px"  # the int64 labels are 8; measured ~16 (before: > 125)
    assert load_label(tmp_path / "out" / "big_labels.png").shape == (4000, 6000)
