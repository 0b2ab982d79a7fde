"""The demo against hostile input: an upload size limit from the config, uploads deleted once used,
error messages without the server's paths, warnings for class names CLIP cuts and for entries equal
up to case."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrovseg.demo.session import DemoInputError, DemoSession, load_image, vocabulary_warnings, without_paths
from tests.predict.conftest import toy_image

#: A toy class name of more than the toy CLIP's 20 tokens ("a photo of a …" included): its end is cut.
LONG_NAME = "red " * 24 + "circle"


# ---------------------------------------------------------------- logic (no Gradio)
def test_messages_name_no_server_folder(tmp_path: Path) -> None:
    assert without_paths("cannot identify image file '/tmp/gradio/5f3a9c/notes.png'") == (
        "cannot identify image file 'notes.png'"
    )
    assert without_paths(r"No such file: C:\Users\srv\cache\a.png") == "No such file: a.png"
    assert without_paths("1/2 and/or 3") == "1/2 and/or 3"  # not paths
    fake = tmp_path / "uploads" / "9a8b7c" / "holiday.png"
    fake.parent.mkdir(parents=True)
    fake.write_text("not an image")
    with pytest.raises(DemoInputError) as info:
        load_image(fake, 2048)
    assert str(info.value).startswith("holiday.png is not an image") and str(tmp_path) not in str(info.value)
    assert "9a8b7c" not in str(info.value)


def test_vocabulary_warnings_cut_names_and_case_twins(segmenter) -> None:
    tokenizer, templates = segmenter.model.backbone.tokenizer, segmenter.templates
    assert tokenizer.context_length == 20  # the toy CLIP's (CLIP's own: 77)
    assert vocabulary_warnings(["red circle", "blue square"], tokenizer, templates) == []
    (cut,) = vocabulary_warnings(["red circle", LONG_NAME], tokenizer, templates)
    assert "longer than CLIP reads (20 tokens" in cut and "red red" in cut
    twins = vocabulary_warnings(["Cat", "dog", "cat", "sofa, couch", "Couch,  sofa"], tokenizer, templates)
    assert twins == [
        "'Cat' and 'cat' are the same class up to case (CLIP lower-cases text): they get the same "
        "embedding and tie. Keep one of them.",
        "'sofa, couch' and 'Couch,  sofa' are the same class up to case (CLIP lower-cases text): they get "
        "the same embedding and tie. Keep one of them.",
    ]


def test_clip_tokenizer_limit_is_77() -> None:
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    assert vocabulary_warnings(["x " * 75], tokenizer, ["{}"]) == []  # 75 + start + end = 77 tokens
    (cut,) = vocabulary_warnings(["x " * 76], tokenizer, ["{}"])
    assert "(77 tokens" in cut


def test_session_shows_the_warnings(segmenter, tmp_path: Path) -> None:
    session = DemoSession(segmenter, max_side=200, max_classes=40, output_root=tmp_path / "demo")
    scene = tmp_path / "scene.png"
    Image.fromarray(toy_image(0)).save(scene)
    out = session.segment(str(scene), f"red circle\nRed Circle\n{LONG_NAME}", 0.5)
    assert len(out.notices) == 2 and out.result.labels.shape == (96, 128)
    assert "cut off" in out.notices[0] and "up to case" in out.notices[1]


# ---------------------------------------------------------------- the served page
@pytest.fixture(scope="module")
def served_small(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory):
    """The demo with a 300 kB upload limit and its own Gradio folder (to look into)."""
    pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')
    from mrovseg.demo.app import build_from_config, launch
    from mrovseg.demo.page import free_port
    from tests.predict.conftest import compose_config

    gradio_dir = tmp_path_factory.mktemp("gradio")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(gradio_dir))
        out = tmp_path_factory.mktemp("demo")
        overrides = [f"ckpt_path={tiny_ckpt}", "device=cpu", "short_side=null", f"demo.port={free_port()}"]
        overrides += ["demo.max_side=200", "demo.num_examples=1", "demo.max_file_size=300kb"]
        app, _ = build_from_config(compose_config("demo", overrides, out))
        _, url, _ = launch(app, compose_config("demo", overrides, out).demo, block=False)
        yield url, app, gradio_dir
        app.close()


def _files(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.rglob(name) if p.is_file()]


def test_upload_limit_from_the_config(served_small, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, app, _ = served_small
    assert app.max_file_size == 300 * 1024  # Gradio's kb
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)
    assert big.stat().st_size > 300 * 1024
    with pytest.raises(Exception, match=r"exceeds the maximum file size"):  # the client reads the limit
        Client(url, verbose=False).predict(handle_file(str(big)), "cat", 0.5, api_name="/segment")
    import httpx  # and the server enforces it on a raw upload

    refused = httpx.post(
        f"{url}gradio_api/upload", files={"files": ("big.png", big.read_bytes(), "image/png")}
    )
    assert refused.status_code == 413 and "maximum allowed size" in refused.text


def test_uploads_are_deleted_once_used(served_small, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    from mrovseg.demo.page import discard_upload

    url, app, gradio_dir = served_small
    client = Client(url, verbose=False)
    scene, rgba, notes = tmp_path / "scene.png", tmp_path / "alpha.png", tmp_path / "notes.png"
    Image.fromarray(toy_image(0)).save(scene)
    Image.fromarray(toy_image(1)).convert("RGBA").save(rgba)  # Gradio converts it to an RGB copy
    notes.write_text("not an image")
    result = client.predict(handle_file(str(scene)), "cat\ndog", 0.5, api_name="/segment")
    assert "128×96" in result[4]
    client.predict(handle_file(str(rgba)), "cat\ndog", 0.5, api_name="/segment")
    with pytest.raises(Exception, match=r"notes\.png is not an image") as info:
        client.predict(handle_file(str(notes)), "cat", 0.5, api_name="/segment")
    assert str(gradio_dir) not in str(info.value) and "/tmp" not in str(info.value)
    for name in ("scene.png", "alpha.png", "alpha.webp", "notes.png"):
        assert not _files(gradio_dir, name), name
    # the example images Gradio keeps for the page stay
    (image,) = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "input-image"]
    kept = [Path(p) for p in image.keep_in_cache]
    assert kept and all(p.is_file() for p in kept)
    discard_upload(image, str(kept[0]))
    assert kept[0].is_file()
    outside = tmp_path / "mine.png"
    outside.write_bytes(b"x")
    discard_upload(image, str(outside))  # not in Gradio's folder: never deleted
    assert outside.is_file() and os.path.isdir(gradio_dir)


def test_page_shows_the_vocabulary_warnings(served_small, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, _, _ = served_small
    scene = tmp_path / "scene.png"
    Image.fromarray(toy_image(0)).save(scene)
    status = Client(url, verbose=False).predict(
        handle_file(str(scene)), f"cat\nCAT\n{LONG_NAME}", 0.5, api_name="/segment"
    )[4]
    assert "up to case" in status and "cut off" in status and "128×96" in status
