"""The image and label reader: every file mode to RGB, EXIF orientation, clear errors."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from mrovseg.data.image_io import ImageReadError, load_image, load_label


def _save(tmp_path: Path, name: str, img: Image.Image, **kw) -> Path:
    path = tmp_path / name
    img.save(path, **kw)
    return path


def test_rgb_png_roundtrip(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = load_image(_save(tmp_path, "a.png", Image.fromarray(arr)))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 100, (100, 100, 100)),
        ("LA", (100, 7), (100, 100, 100)),
        ("RGBA", (10, 20, 30, 0), (10, 20, 30)),
        ("I;16", 65535, (255, 255, 255)),
        ("I;16", 257 * 40, (40, 40, 40)),
        ("I", 200, (200, 200, 200)),
        ("I", 65535, (255, 255, 255)),
        ("F", 0.5, (128, 128, 128)),
    ],
)
def test_modes_become_rgb(tmp_path: Path, mode: str, value, expected) -> None:
    ext = "tif" if mode in ("F", "I") else "png"
    path = _save(tmp_path, f"x.{ext}", Image.new(mode, (4, 3), value))
    out = load_image(path)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    assert tuple(out[1, 2]) == expected


def test_palette_image(tmp_path: Path) -> None:
    img = Image.new("P", (4, 3), 1)
    img.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    out = load_image(_save(tmp_path, "p.png", img))
    assert tuple(out[0, 0]) == (200, 100, 50)


def test_exif_orientation(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = _save(tmp_path, "r.jpg", Image.fromarray(arr), exif=exif.tobytes(), quality=95)
    shown = load_image(path)
    assert shown.shape == (40, 20, 3)
    assert shown[:20].mean() > 200 and shown[20:].mean() < 50  # left half went to the top
    stored = load_image(path, exif_transpose=False)
    assert stored.shape == (20, 40, 3)


def test_unreadable_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes\.jpg"):
        load_image(text)
    with pytest.raises(ImageReadError, match=r"not found.*missing\.png"):
        load_image(tmp_path / "missing.png")
    good = _save(tmp_path, "t.jpg", Image.new("RGB", (64, 64), (9, 9, 9)))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageReadError, match=r"truncated\.jpg"):
        load_image(truncated)
    assert issubclass(ImageReadError, ValueError)


def test_labels(tmp_path: Path) -> None:
    lab8 = np.array([[0, 1], [254, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(load_label(_save(tmp_path, "l.png", Image.fromarray(lab8))), lab8)
    pal = Image.new("P", (2, 2))
    pal.putdata(lab8.flatten().tolist())
    pal.putpalette([(i * 7) % 256 for i in range(768)])
    got = load_label(_save(tmp_path, "p.png", pal))  # palette indices, not colours (VOC SegmentationClass)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, lab8)
    lab16 = np.array([[0, 846], [300, 65535]], dtype=np.uint16)
    tif_pil = _save(tmp_path, "a.tif", Image.fromarray(lab16), format="TIFF")
    np.testing.assert_array_equal(load_label(tif_pil), lab16)
    tifffile.imwrite(tmp_path / "b.tif", lab16)
    out = load_label(tmp_path / "b.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, lab16)
    np.testing.assert_array_equal(load_label(_save(tmp_path, "c.png", Image.fromarray(lab16))), lab16)


def test_label_errors(tmp_path: Path) -> None:
    rgb = _save(tmp_path, "rgb.png", Image.new("RGB", (3, 3)))
    with pytest.raises(ImageReadError, match=r"rgb\.png.*single-channel"):
        load_label(rgb)
    with pytest.raises(ImageReadError, match=r"nothere\.png"):
        load_label(tmp_path / "nothere.png")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=r"bad\.tif"):
        load_label(bad)
