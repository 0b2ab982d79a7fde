"""``python -m mrovseg.predict``: the files it writes, bad inputs, errors before work, API agreement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from PIL import Image

from mrovseg.constants import REPO_ROOT
from mrovseg.data.image_files import output_stems, resolve_inputs
from mrovseg.data.image_io import load_image, load_label
from mrovseg.predict import predict
from mrovseg.serving.outputs import atomic_write
from mrovseg.serving.overlay import blend, palette
from mrovseg.serving.segmenter import Segmenter
from mrovseg.training.checkpoint import clip_overrides_of
from tests.predict.conftest import toy_image


def hydra_list(names: list[str]) -> str:
    """A Hydra list override value with every entry quoted (names may hold spaces and commas)."""
    return "[" + ",".join(f'"{n}"' for n in names) + "]"


def check_outputs(out_dir: Path, stem: str, image_path: Path, vocabulary: list[str]) -> dict:
    """Asserts the documented contents of ``<stem>_labels.png``, ``<stem>_overlay.png``, ``<stem>.json``."""
    image = load_image(image_path)
    h, w = image.shape[:2]
    k = len(vocabulary)
    labels = load_label(out_dir / f"{stem}_labels.png").astype(np.int64)
    assert labels.shape == (h, w) and labels.dtype == np.int64
    assert labels.min() >= 0 and labels.max() < k
    meta = json.loads((out_dir / f"{stem}.json").read_text())
    assert meta["image"] == str(image_path)
    assert meta["image_size"] == [h, w] and meta["vocabulary"] == vocabulary
    counts = np.bincount(labels.ravel(), minlength=k)
    assert meta["pixel_counts"] == counts.tolist() and sum(meta["pixel_counts"]) == h * w
    assert len(meta["class_scores"]) == k
    assert meta["labels_dtype"] == ("uint8" if k <= 255 else "uint16")
    assert set(meta["timing"]) >= {"prepare", "inference", "upsample", "write", "total"}
    colours = palette(k)
    # the legend lists exactly the classes present, largest area first, with their area share
    present = sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c))
    assert [e["index"] for e in meta["legend"]] == present
    for e in meta["legend"]:
        assert e["name"] == vocabulary[e["index"]] and e["pixels"] == counts[e["index"]]
        assert e["share"] == pytest.approx(counts[e["index"]] / (h * w))
        assert e["colour"] == colours[e["index"]].tolist()
    # the overlay: the blended image at the top left, a legend panel with the present classes' colours
    overlay = np.asarray(Image.open(out_dir / f"{stem}_overlay.png").convert("RGB"))
    assert overlay.shape[0] >= h and overlay.shape[1] > w
    assert np.array_equal(overlay[:h, :w], blend(image, labels, colours, 0.5))
    panel_colours = {tuple(c) for c in overlay[:, w:].reshape(-1, 3)}
    for c in range(k):
        assert (tuple(colours[c]) in panel_colours) == (c in present), vocabulary[c]
    return meta


def test_cli_folder_with_a_corrupt_file(
    tiny_ckpt: Path, image_dir: Path, tmp_path: Path, varied_vocab: list[str]
) -> None:
    """A real ``python -m mrovseg.predict`` run on a folder; its labels equal the Python API's."""
    (image_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "mrovseg.predict",
        f"ckpt_path={tiny_ckpt}",
        f"inputs={image_dir}",
        f"vocabulary={hydra_list(varied_vocab)}",
        "short_side=null",
        "device=cpu",
        f"output_dir={out}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log
    assert "broken.png" in log and "2 ok, 1 failed" in log, log
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}{suffix}" for s in ("scene_a", "scene_b") for suffix in (".json", "_labels.png", "_overlay.png")
    )  # nothing for the corrupt file or notes.txt, no temporary files left
    seg = Segmenter.from_checkpoint(tiny_ckpt, short_side=None)
    for stem, name in (("scene_a", "scene_a.png"), ("scene_b", "scene_b.jpg")):
        meta = check_outputs(out, stem, image_dir / name, varied_vocab)
        api = seg.segment(image_dir / name, varied_vocab)
        assert np.array_equal(api.labels, load_label(out / f"{stem}_labels.png")), stem
        assert np.allclose(api.class_scores, meta["class_scores"], rtol=1e-5, atol=1e-7), stem
    assert len(json.loads((out / "scene_a.json").read_text())["legend"]) == 2  # toy_image(0) has both


def test_predict_in_process_glob_and_short_side(
    make_predict_cfg: Callable[..., DictConfig], image_dir: Path, tmp_path: Path, varied_vocab: list[str]
) -> None:
    cfg = make_predict_cfg(
        f"inputs=[{image_dir}/*.png]", f"vocabulary={hydra_list(varied_vocab)}", "short_side=48"
    )
    summary = predict(cfg)
    assert summary.ok == ["scene_a"] and not summary.failed
    meta = check_outputs(Path(cfg.output_dir), "scene_a", image_dir / "scene_a.png", varied_vocab)
    assert meta["working_size"] == [48, 64] and meta["short_side"] == 48
    assert "1 ok, 0 failed" in summary.line()


def test_more_than_255_classes_give_uint16_labels(
    make_predict_cfg: Callable[..., DictConfig], image_dir: Path, tmp_path: Path
) -> None:
    words = tmp_path / "words.txt"
    vocabulary = [f"thing {i}" for i in range(300)]
    words.write_text("\n".join(vocabulary))
    cfg = make_predict_cfg(f"inputs={image_dir / 'scene_a.png'}", f"vocabulary={words}")
    assert predict(cfg).ok == ["scene_a"]
    out = Path(cfg.output_dir)
    with Image.open(out / "scene_a_labels.png") as img:
        assert img.mode.startswith("I;16") or img.mode == "I"
    assert load_label(out / "scene_a_labels.png").dtype == np.uint16
    check_outputs(out, "scene_a", image_dir / "scene_a.png", vocabulary)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["vocabulary=[]"], ValueError, "vocabulary is empty"),
        (["vocabulary=cats"], ValueError, "Unknown vocabulary 'cats'"),
        (["vocabulary=null"], ValueError, "vocabulary is required"),
        (
            ["ckpt_path=/nonexistent/model.ckpt"],
            FileNotFoundError,
            "Checkpoint not found: /nonexistent/model.ckpt",
        ),
        (["clip=vitb16"], ValueError, "trained with CLIP toy-vit-p4-32, but CLIP ViT-B-16 was requested"),
        (["inputs=null"], ValueError, "inputs is required"),
        (["inputs=/nonexistent/dir/*.png"], ValueError, "No input images found"),
        (["alpha=2"], ValueError, "alpha must be in"),
        pytest.param(
            ["device=cuda"],
            ValueError,
            "no CUDA GPU is available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is available"),
        ),
    ],
)
def test_bad_settings_fail_before_any_work(
    make_predict_cfg: Callable[..., DictConfig],
    image_dir: Path,
    overrides: list[str],
    error: type,
    message: str,
) -> None:
    cfg = make_predict_cfg(f"inputs={image_dir}", "vocabulary=[cat,dog]", *overrides)
    with pytest.raises(error, match=message):
        predict(cfg)
    assert not Path(cfg.output_dir).exists()  # nothing was written


def test_clip_overrides() -> None:
    from omegaconf import OmegaConf

    assert clip_overrides_of(OmegaConf.create({"clip": {"pretrained": "???"}})) == {}
    assert clip_overrides_of(OmegaConf.create({"clip": {"pretrained": "/w.pt"}})) == {"pretrained": "/w.pt"}
    assert clip_overrides_of(OmegaConf.create({"clip": {"pretrained": None}})) == {"pretrained": None}


def test_clip_pretrained_override_reaches_the_backbone(
    make_predict_cfg: Callable[..., DictConfig], image_dir: Path
) -> None:
    cfg = make_predict_cfg(f"inputs={image_dir}", "vocabulary=[cat,dog]", "clip.pretrained=/nonexistent/w.pt")
    with pytest.raises(Exception, match=r"CLIP weights file not found: /nonexistent/w\.pt"):
        predict(cfg)
    assert not Path(cfg.output_dir).exists()


def test_a_failing_image_keeps_earlier_files(
    make_predict_cfg: Callable[..., DictConfig], image_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_predict_cfg(f"inputs={image_dir}", "vocabulary=[cat,dog]")
    out = Path(cfg.output_dir)
    assert predict(cfg).ok == ["scene_a", "scene_b"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import mrovseg.serving.outputs as predict_module

    original = predict_module.render_overlay
    calls = []

    def second_one_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(*args, **kwargs)

    monkeypatch.setattr(predict_module, "render_overlay", second_one_fails)
    summary = predict(cfg)
    assert summary.ok == ["scene_a"] and list(summary.failed) == [str(image_dir / "scene_b.jpg")]
    assert "disk on fire" in summary.failed[str(image_dir / "scene_b.jpg")]
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before)  # no temporary files; nothing lost
    for name in ("scene_b.json", "scene_b_labels.png", "scene_b_overlay.png"):
        assert after[name] == before[name]


def test_atomic_write_never_leaves_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old")

    def partial(path: Path) -> None:
        path.write_text("half of the new")
        raise OSError("interrupted")

    with pytest.raises(OSError, match="interrupted"):
        atomic_write(target, partial)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]
    atomic_write(target, lambda p: p.write_text("new"))
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_resolve_inputs_and_output_stems(image_dir: Path, tmp_path: Path) -> None:
    a, b = image_dir / "scene_a.png", image_dir / "scene_b.jpg"
    assert resolve_inputs(str(image_dir)) == [a, b]  # folders: image files only, sorted
    assert resolve_inputs([f"{image_dir}/*.jpg", str(a), str(a)]) == [b, a]  # globs; duplicates dropped
    notes, missing = image_dir / "notes.txt", tmp_path / "missing.png"
    assert resolve_inputs([str(notes), str(missing)]) == [notes, missing]  # explicit files: reported later
    with pytest.raises(ValueError, match="No input images"):
        resolve_inputs([f"{tmp_path}/*.webp"])
    with pytest.raises(ValueError, match="No inputs"):
        resolve_inputs([])
    paths = [Path("x/a.png"), Path("y/a.png"), Path("x/a.jpg"), Path("b.png")]
    assert output_stems(paths) == ["a_png", "a_png-2", "a_jpg", "b"]


def test_palette_is_fixed_and_distinct() -> None:
    p = palette(300)
    assert p.shape == (300, 3) and p.dtype == np.uint8
    assert np.array_equal(palette(10), p[:10]) and len({tuple(c) for c in p[:150]}) == 150
    image = toy_image(0, 10, 12)
    labels = np.zeros((10, 12), np.int64)
    assert np.array_equal(blend(image, labels, p, 0.0), image)
    assert np.array_equal(blend(image, labels, p, 1.0), np.broadcast_to(p[0], image.shape))
