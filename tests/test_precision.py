"""Inference precision (``mrovseg.serving.precision``): ``auto`` decides by the device's capability, the
setting reaches the model (the dtype seen inside the vision and text towers), fp32 is today's path bit
for bit, and the text-embedding cache keeps precisions apart."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from mrovseg.model import text_cache
from mrovseg.model.inference import sliding_window, upsample_argmax
from mrovseg.serving import precision as prec
from mrovseg.serving.precision import (
    bf16_support,
    cpu_flags,
    precision_context,
    prepare_model,
    resolve_precision,
)
from mrovseg.serving.segmenter import Segmenter

TEMPLATES = ["a photo of a {}."]
VOCAB = ["red circle", "blue square, blue box", "background"]


def fresh(make_model) -> torch.nn.Module:
    """A tiny MROVSeg on its own copy of the toy CLIP, with empty in-memory text caches (bf16 converts
    CLIP's weights in place: never the session's shared toy CLIP)."""
    model = copy.deepcopy(make_model())
    model.backbone._text_cache.clear()
    return model


def toy_image(seed: int = 0, h: int = 80, w: int = 96) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- auto decides by capability
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),
        ({"avx2", "amx_tile", "amx_bf16"}, "bf16"),
        ({"avx2", "amx"}, "bf16"),
        ({"avx2", "avx512f", "avx512_vnni"}, "fp32"),
        (set(), "fp32"),
    ],
)
def test_auto_on_cpu_decides_by_the_flags(flags: set[str], expected: str, caplog) -> None:
    with caplog.at_level(logging.INFO, logger=prec.__name__):
        assert resolve_precision("auto", "cpu", flags=flags) == expected
    assert f"precision=auto -> {expected}" in caplog.text  # the choice is logged, with its reason


def test_auto_reads_proc_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"avx2"}))
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_asks_for_native_bf16(supported: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    asked = {}

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        asked["emulation"] = including_emulation
        return supported

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    assert resolve_precision("auto", "cuda:0") == ("bf16" if supported else "fp32")
    assert asked == {"emulation": False} and bf16_support("cuda")[0] is supported


def test_explicit_values_aliases_and_refusals() -> None:
    assert resolve_precision("fp32", "cpu", flags={"amx_bf16"}) == "fp32"
    assert resolve_precision("bf16", "cpu", flags=set()) == "bf16"  # asked for: honoured
    assert resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("BFloat16", "cpu") == "bf16" and resolve_precision("float32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="int8 is not offered"):
        resolve_precision("int8", "cpu")
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        resolve_precision("fp8", "cpu")
    assert prec.accelerator_device("cpu").type == "cpu" and prec.accelerator_device("gpu").type == "cuda"


# ----------------------------------------------------------------------------- the setting reaches the model
def record_dtypes(model: torch.nn.Module) -> dict[str, set[torch.dtype]]:
    """Output dtypes of the first vision block's and the first text block's MLP, recorded by hooks."""
    seen: dict[str, set[torch.dtype]] = {"vision": set(), "text": set()}
    clip = model.backbone.clip
    for key, block in (
        ("vision", clip.visual.transformer.resblocks[0]),
        ("text", clip.transformer.resblocks[0]),
    ):
        block.mlp.c_fc.register_forward_hook(lambda m, i, out, key=key: seen[key].add(out.dtype))
    return seen


@pytest.mark.parametrize(("setting", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_segmenter_runs_both_towers_in_the_precision(make_model, setting: str, dtype: torch.dtype) -> None:
    model = fresh(make_model)
    seg = Segmenter(model, TEMPLATES, window=64, short_side=None, precision=setting)
    seen = record_dtypes(seg.model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MROVSEG_CACHE", "off")
        result = seg(toy_image(), VOCAB)
    assert seg.precision == setting and seen == {"vision": {dtype}, "text": {dtype}}
    assert result.scores.dtype == np.float32 and result.class_scores.dtype == np.float32
    _, text = seg.text_embeddings(VOCAB)
    assert text.dtype == torch.float32
    assert result.labels.shape == (80, 96)
    if setting == "bf16":  # CLIP's matmul weights are bf16, its norms and the adapter stay fp32
        assert model.backbone.blocks[0].mlp.c_fc.weight.dtype == torch.bfloat16
        assert model.backbone.blocks[0].attn.in_proj_weight.dtype == torch.bfloat16
        assert model.backbone.blocks[0].ln_1.weight.dtype == torch.float32
        assert next(model.adapter.parameters()).dtype == torch.float32


def test_bf16_agrees_with_fp32(make_model) -> None:
    fp32 = Segmenter(fresh(make_model), TEMPLATES, window=64, short_side=None, precision="fp32")
    bf16 = Segmenter(fresh(make_model), TEMPLATES, window=64, short_side=None, precision="bf16")
    a, b = fp32(toy_image(3), VOCAB), bf16(toy_image(3), VOCAB)
    assert np.abs(a.scores - b.scores).max() < 0.05
    assert (a.labels == b.labels).mean() > 0.9
    _, ta = fp32.text_embeddings(VOCAB)
    _, tb = bf16.text_embeddings(VOCAB)
    assert torch.nn.functional.cosine_similarity(ta, tb).min() > 0.99


def test_fp32_is_the_path_without_the_setting_bit_for_bit(make_model) -> None:
    """precision=fp32 gives exactly what the code gave before the setting: no autocast, no conversion."""
    model = make_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    seg = Segmenter(model, TEMPLATES, window=64, short_side=None, precision="fp32")
    result = seg(toy_image(5), VOCAB)
    text = model.backbone.encode_vocabulary(VOCAB, TEMPLATES)
    x = torch.from_numpy(toy_image(5)).permute(2, 0, 1).float().div_(255.0)
    with torch.no_grad():
        ref = sliding_window(lambda w: model.semantic_scores(w, text), x, 64, seg.window_overlap, 4)
    assert np.array_equal(result.scores, ref.numpy())
    assert np.array_equal(result.labels, upsample_argmax(ref, (80, 96)).numpy())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # the model is untouched


def test_prepare_is_once_and_one_way(make_model) -> None:
    model = fresh(make_model)
    assert prepare_model(model, "fp32") is model and prepare_model(model, "bf16") is model
    assert prepare_model(model, "bf16") is model  # again: nothing to do
    with pytest.raises(ValueError, match="prepared for bf16"):
        prepare_model(model, "fp32")
    with pytest.raises(ValueError, match="resolved precision"):
        precision_context("auto", "cpu")


# ------------------------------------------------------------------------- the cache keeps precisions apart
def test_cache_key_separates_precisions_and_keeps_the_fp32_key() -> None:
    fp, names = "abc", ["cat", "sofa, couch"]
    keys = {p: text_cache.entry_key(fp, TEMPLATES, names, p) for p in ("fp32", "bf16", "fp16")}
    assert len(set(keys.values())) == 3
    old = text_cache.hashlib.blake2b(json.dumps([fp, TEMPLATES, names]).encode(), digest_size=20).hexdigest()
    assert keys["fp32"] == old == text_cache.entry_key(fp, TEMPLATES, names)  # entries of before stay valid


def test_disk_cache_holds_one_entry_per_precision(
    make_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MROVSEG_CACHE", str(tmp_path))
    folder = tmp_path / "text_embeddings"
    fp32 = Segmenter(fresh(make_model), TEMPLATES, window=64, precision="fp32")
    bf16 = Segmenter(fresh(make_model), TEMPLATES, window=64, precision="bf16")
    _, t32 = fp32.text_embeddings(VOCAB)
    assert len(list(folder.glob("*.pt"))) == 1
    _, t16 = bf16.text_embeddings(VOCAB)  # the fp32 entry is not used for bf16
    entries = sorted(folder.glob("*.pt"))
    assert len(entries) == 2 and not torch.equal(t32, t16)
    assert sorted(torch.load(e, weights_only=True)["precision"] for e in entries) == ["bf16", "fp32"]
    assert bf16.model.backbone.text_fingerprint() == fp32.model.backbone.text_fingerprint()  # same weights
    # a fresh bf16 segmenter reads its own entry back; an entry of another precision is refused
    again = Segmenter(fresh(make_model), TEMPLATES, window=64, precision="bf16")
    again.model.backbone.encode_text = None  # would fail if the tower ran
    assert torch.equal(again.text_embeddings(VOCAB)[1], t16)
    key = text_cache.entry_key(fp32.model.backbone.text_fingerprint(), TEMPLATES, VOCAB)
    assert text_cache.load(folder, key, TEMPLATES, VOCAB, "bf16") is None


# ----------------------------------------------------------------------------- the benchmark script
def test_bench_script_writes_the_issue_keys(tmp_path: Path) -> None:
    """``scripts/bench_cpu_precision.py`` on the toy model (the same code as ViT-B/16's, seconds here)."""
    import os
    import subprocess
    import sys

    from mrovseg.constants import REPO_ROOT

    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "bench_cpu_precision.py"), "--json", str(out)]
    cmd += ["--model", "toy", "--size", "64", "--classes", "5", "--matmul", "128", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result) == {
        "fp32_s",
        "bf16_s",
        "int8_s",
        "fp32_floor_s",
        "bf16_floor_s",
        "bf16_agreement",
        "int8_agreement",
        "torch",
        "cpu_flags",
    }
    assert result["torch"] == torch.__version__ and isinstance(result["cpu_flags"], list)
    assert 0.0 <= result["bf16_agreement"] <= 1.0 and 0.0 <= result["int8_agreement"] <= 1.0
    assert all(result[k] > 0 for k in ("fp32_s", "bf16_s", "int8_s", "fp32_floor_s", "bf16_floor_s"))


def _run_bench(tmp_path: Path, *extra: str) -> dict:
    import os
    import subprocess
    import sys

    from mrovseg.constants import REPO_ROOT

    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "bench_cpu_precision.py"), "--json", str(out)]
    cmd += ["--model", "toy", "--size", "64", "--classes", "5", "--matmul", "128", "--threads", "1", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_bench_script_parts_add_up_to_the_bf16_forward(tmp_path: Path) -> None:
    """``--parts``: the trunk, adapter and rest of the bf16 forward, each positive, summing to its total."""
    result = _run_bench(tmp_path, "--parts", "--kernels")
    assert set(result["bf16_kernels_gflops"]) == {
        "attention_5x401",
        "attention_1x1700",
        "linear_2005x768x3072",
    }
    assert all(v > 0 for v in result["bf16_kernels_gflops"].values())
    parts = result["bf16_parts_s"]
    assert set(parts) == {"clip_trunk", "adapter", "rest", "total"}
    assert parts["clip_trunk"] > 0 and parts["adapter"] > 0 and parts["total"] > 0
    # medians of each part are taken separately, so the sum matches the total's median only roughly
    assert parts["clip_trunk"] + parts["adapter"] <= 1.5 * parts["total"]


@pytest.mark.slow
def test_bench_script_times_a_compiled_bf16_model(tmp_path: Path) -> None:
    """``--compile blocks``: a fourth, torch.compile'd bf16 model in the same rounds, agreeing with fp32."""
    result = _run_bench(tmp_path, "--compile", "blocks")
    assert result["bf16_compiled_s"] > 0 and result["compile_first_s"] > 0
    assert result["bf16_compiled_agreement"] >= 0.99


def test_a_model_that_is_not_bf16_safe_runs_fp32_under_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model class listed as not bf16-safe: auto falls back to fp32, bf16 is refused with the reason."""
    ckpt = Path(__file__).parent / "fixtures" / "checkpoints_0_1" / "ovseg.ckpt"
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    monkeypatch.setitem(prec.BF16_UNSAFE, "OVSeg", "a reason for the test")
    seg = Segmenter.from_checkpoint(ckpt, precision="auto")
    assert type(seg.model).__name__ == "OVSeg" and seg.precision == "fp32"
    with pytest.raises(ValueError, match="not supported for this model: a reason for the test"):
        Segmenter.from_checkpoint(ckpt, precision="bf16")


def test_ovseg_runs_under_bf16_with_fp32_region_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    """OVSeg's ensemble under bf16 autocast: its CLIP region probabilities stay float32 (the earlier code
    wrote bf16 logits of the autocast pass into a float32 tensor), and auto picks bf16 on a bf16 CPU."""
    import numpy as np

    ckpt = Path(__file__).parent / "fixtures" / "checkpoints_0_1" / "ovseg.ckpt"
    monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    seg = Segmenter.from_checkpoint(ckpt, precision="auto")
    assert seg.precision == "bf16"
    image = np.load(Path(__file__).parent / "fixtures" / "checkpoints_0_1" / "expected_labels.npz")["image"]
    result = seg(image, vocabulary="toy")
    assert result.scores.dtype == np.float32 and np.isfinite(result.scores).all()
