"""The browser demo's logic and its HTTP API (in-process Gradio server + gradio_client).

The demo must run predict's code path: the same Segmenter labels, the same label PNG and JSON files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrovseg.demo.session import (
    DemoInputError,
    DemoSession,
    benchmark_names,
    example_images,
    load_image,
    parse_vocabulary,
)
from mrovseg.predict import predict
from tests.predict.conftest import toy_image


@pytest.fixture
def session(segmenter, tmp_path: Path) -> DemoSession:
    return DemoSession(segmenter, max_side=200, max_classes=40, output_root=tmp_path / "demo")


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    Image.fromarray(toy_image(0)).save(path)
    return path


# ---------------------------------------------------------------- logic (no Gradio)
def test_vocabulary_box_parsing() -> None:
    assert parse_vocabulary("cat\n\n sofa, couch \n# a comment\nwindow blind  # trailing\n", 10) == [
        "cat",
        "sofa, couch",
        "window blind",
    ]
    with pytest.raises(DemoInputError, match="empty"):
        parse_vocabulary(" \n# only a comment\n", 10)
    with pytest.raises(DemoInputError, match="at most 3"):
        parse_vocabulary("a\nb\nc\nd", 3)
    with pytest.raises(DemoInputError, match="appears twice"):
        parse_vocabulary("cat\ncat", 10)
    assert benchmark_names("voc20").splitlines()[:2] == ["aeroplane", "bicycle"]


def test_demo_equals_predict_files(
    session: DemoSession, segmenter, scene: Path, varied_vocab, make_predict_cfg
) -> None:
    """Labels, label PNG and JSON of the demo are predict's for the same file and words."""
    out = session.segment(str(scene), "\n".join(varied_vocab), alpha=0.5)
    expected = segmenter.segment(scene, varied_vocab, return_scores=False)
    np.testing.assert_array_equal(out.result.labels, expected.labels)
    labels_png, json_path = (Path(p) for p in out.files)
    np.testing.assert_array_equal(np.asarray(Image.open(labels_png)), expected.labels.astype(np.uint8))

    cfg = make_predict_cfg(f"inputs={scene}", f"vocabulary=[{','.join(varied_vocab)}]")
    predict(cfg)
    ours, theirs = (
        json.loads(json_path.read_text()),
        json.loads((Path(cfg.output_dir) / "scene.json").read_text()),
    )
    for key in ("vocabulary", "pixel_counts", "legend", "image_size", "working_size", "labels_dtype"):
        assert ours[key] == theirs[key], key
    np.testing.assert_allclose(ours["class_scores"], theirs["class_scores"], rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(Image.open(labels_png)), np.asarray(Image.open(Path(cfg.output_dir) / "scene_labels.png"))
    )
    assert [row[0] for row in out.table()] == [e.name for e in expected.legend()]
    assert all(f'data-class="{e.name}"' in out.legend_html() for e in expected.legend())
    assert "total" in out.timing_text()


def test_opacity_reblends_without_the_model(session: DemoSession, scene: Path, monkeypatch) -> None:
    from mrovseg.demo.session import reblend

    out = session.segment(str(scene), "red circle\nbackground", alpha=0.5)
    np.testing.assert_array_equal(reblend(out.result, 0.5), out.overlay)
    monkeypatch.setattr(session.segmenter, "scores", None)  # any model call would fail
    strong = reblend(out.result, 1.0)
    h, w = out.result.image_size
    assert strong.shape == out.overlay.shape
    assert not np.array_equal(strong[:h, :w], out.overlay[:h, :w])
    np.testing.assert_array_equal(reblend(out.result, 0.0)[:h, :w], out.result.image)


def test_bad_inputs_are_sentences(session: DemoSession, tmp_path: Path, scene: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(DemoInputError, match=r"notes\.png is not an image"):
        session.segment(str(text), "cat", 0.5)
    with pytest.raises(DemoInputError, match="No image"):
        session.segment(None, "cat", 0.5)
    with pytest.raises(DemoInputError, match="empty"):
        session.segment(str(scene), "", 0.5)
    out = session.segment(str(scene), "cat\ndog", 0.5)  # still serving
    assert out.result.labels.shape == (96, 128)


def test_large_image_is_resized_with_a_notice(session: DemoSession, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.fromarray(toy_image(0, 150, 400)).save(big)
    image, notice = load_image(big, 200)
    assert image.shape == (75, 200, 3)
    assert "400×150" in notice and "200×75" in notice
    out = session.segment(str(big), "cat\ndog", 0.5)
    assert out.result.labels.shape == (75, 200)
    assert out.notices == [notice]


def test_example_images_are_toy_scenes(tmp_path: Path) -> None:
    paths = example_images(tmp_path, count=2, size=(48, 64))
    assert [Path(p).name for p in paths] == ["toy_scene_0.png", "toy_scene_1.png"]
    assert np.asarray(Image.open(paths[0])).shape == (48, 64, 3)


# ---------------------------------------------------------------- the HTTP API, in process
@pytest.fixture(scope="module")
def served(tiny_ckpt: Path, tmp_path_factory: pytest.TempPathFactory):
    """The demo of the tiny checkpoint, served on a free local port (closed after the module)."""
    pytest.importorskip("gradio", reason='the demo extra is not installed: pip install -e ".[demo]"')
    from mrovseg.demo.app import build_from_config, launch
    from mrovseg.demo.page import free_port
    from tests.predict.conftest import compose_config

    out = tmp_path_factory.mktemp("demo")
    overrides = [f"ckpt_path={tiny_ckpt}", "device=cpu", "short_side=null", f"demo.port={free_port()}"]
    cfg = compose_config("demo", [*overrides, "demo.max_side=200", "demo.num_examples=1"], out)
    app, session = build_from_config(cfg)
    _, url, _ = launch(app, cfg.demo, block=False)
    yield url, session
    app.close()


def test_client_labels_equal_segmenter(served, segmenter, scene: Path, varied_vocab) -> None:
    from gradio_client import Client, handle_file

    url, _ = served
    client = Client(url, verbose=False)
    overlay, legend, table, timing, status, files = client.predict(
        handle_file(str(scene)), "\n".join(varied_vocab), 0.5, api_name="/segment"
    )
    expected = segmenter.segment(scene, varied_vocab, return_scores=False)
    labels_png = next(f for f in files if f.endswith("_labels.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(labels_png)), expected.labels.astype(np.uint8))
    assert [row[0] for row in table["data"]] == [e.name for e in expected.legend()]
    assert all(e.name in legend for e in expected.legend())
    assert np.asarray(Image.open(overlay)).shape[0] >= 96
    assert "total" in timing and "128×96" in status
    saved = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert saved["pixel_counts"] == expected.pixel_counts.tolist()


def test_client_errors_are_words_and_server_keeps_serving(served, scene: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, _ = served
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="vocabulary is empty") as info:
        client.predict(handle_file(str(scene)), " \n ", 0.5, api_name="/segment")
    assert "Traceback" not in str(info.value)
    with pytest.raises(Exception, match="at most 1000"):
        client.predict(
            handle_file(str(scene)), "\n".join(f"c{i}" for i in range(1001)), 0.5, api_name="/segment"
        )
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    with pytest.raises(Exception, match=r"notes\.txt is not an image"):
        client.predict(handle_file(str(notes)), "cat", 0.5, api_name="/segment")
    result = client.predict(handle_file(str(scene)), "cat\ndog", 0.5, api_name="/segment")
    assert "128×96" in result[4]
    assert client.predict("voc20", api_name="/benchmark").startswith("aeroplane\nbicycle")
