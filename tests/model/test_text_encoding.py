"""Fast vocabularies: truncated text encoding equals open_clip's, the disk cache, the progress bar."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mrovseg.model import text_cache
from mrovseg.model.clip_backbone import CLIPBackbone
from tests.conftest import make_toy_backbone

PROMPTS = [
    "a cat.",
    "a photo of a red triangle in the scene.",
    "there is a very small blue circle on the left of a big green square",
    "x",
]


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def test_truncated_encode_text_equals_open_clip(toy_backbone: CLIPBackbone) -> None:
    tokens = toy_backbone.tokenizer(PROMPTS)
    with torch.no_grad():
        ref = toy_backbone.clip.encode_text(tokens)
    ours = toy_backbone.encode_text(tokens)
    assert ours.shape == ref.shape == (4, toy_backbone.embed_dim)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_truncation_cuts_at_the_longest_prompt(toy_backbone: CLIPBackbone, monkeypatch) -> None:
    """Short prompts run the transformer on fewer positions than the context; the result is unchanged."""
    seen: list[int] = []
    inner = toy_backbone.clip.transformer.forward

    def spy(x, *args, **kwargs):
        seen.append(x.shape[1])
        return inner(x, *args, **kwargs)

    monkeypatch.setattr(toy_backbone.clip.transformer, "forward", spy)
    tokens = toy_backbone.tokenizer(["a cat.", "a dog."])
    out = toy_backbone.encode_text(tokens)
    monkeypatch.undo()
    longest = int(tokens.argmax(dim=-1).max()) + 1  # start + words + end token
    assert seen == [longest] and longest < tokens.shape[1]
    with torch.no_grad():
        torch.testing.assert_close(out, toy_backbone.clip.encode_text(tokens), atol=1e-5, rtol=0)


def test_batched_vocabulary_equals_one_prompt_at_a_time(toy_backbone: CLIPBackbone, monkeypatch) -> None:
    """Length-sorted batches (of 3) put every prompt's embedding back in its own place."""
    monkeypatch.setenv("MROVSEG_CACHE", "off")
    names = ["cat", "sofa, couch", "very long name of a window blind", "x", "red triangle"]
    templates = ["a photo of a {}.", "{}"]
    emb = toy_backbone.encode_vocabulary(names, templates, batch_size=3)
    for k, name in enumerate(names):
        prompts = [t.format(s.strip()) for s in name.split(",") for t in templates]
        with torch.no_grad():
            feats = F.normalize(
                toy_backbone.clip.encode_text(toy_backbone.tokenizer(prompts)).float(), dim=-1
            )
        torch.testing.assert_close(emb[k], F.normalize(feats.mean(0), dim=0), atol=1e-5, rtol=0)


def test_disk_cache_is_shared_across_loads_and_keyed_by_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MROVSEG_CACHE", str(tmp_path))
    names, templates = ["red circle", "blue square"], ["a photo of a {}."]
    torch.manual_seed(3)
    first = make_toy_backbone()
    emb = first.encode_vocabulary(names, templates)
    entries = list((tmp_path / "text_embeddings").glob("*.pt"))
    assert len(entries) == 1

    torch.manual_seed(3)  # same weights, new object: read from disk, text tower not run
    again = make_toy_backbone()
    counter = _Counter(again.encode_text)
    monkeypatch.setattr(again, "encode_text", counter)
    torch.testing.assert_close(again.encode_vocabulary(names, templates), emb, atol=0, rtol=0)
    assert counter.calls == 0
    again.encode_vocabulary(names, ["{}"])  # other templates: another entry
    assert counter.calls == 1
    assert len(list((tmp_path / "text_embeddings").glob("*.pt"))) == 2

    torch.manual_seed(4)  # other weights: never the first model's entry
    other = make_toy_backbone()
    assert other.text_fingerprint() != first.text_fingerprint()
    assert not torch.allclose(other.encode_vocabulary(names, templates), emb)


def test_damaged_cache_entry_is_recomputed(tmp_path, monkeypatch, toy_backbone: CLIPBackbone) -> None:
    monkeypatch.setenv("MROVSEG_CACHE", str(tmp_path))
    names, templates = ["damaged entry test"], ["a {}."]
    key = text_cache.entry_key(toy_backbone.text_fingerprint(), templates, names)
    folder = tmp_path / "text_embeddings"
    folder.mkdir()
    (folder / f"{key}.pt").write_bytes(b"not a torch file")
    emb = toy_backbone.encode_vocabulary(names, templates)
    with torch.no_grad():
        ref = F.normalize(
            toy_backbone.clip.encode_text(toy_backbone.tokenizer(["a damaged entry test."])), dim=-1
        )
    torch.testing.assert_close(emb, ref, atol=1e-5, rtol=0)
    assert text_cache.load(folder, key, templates, names) is not None  # rewritten


@pytest.mark.parametrize("value", ["off", "0", ""])
def test_cache_can_be_switched_off(value: str, monkeypatch) -> None:
    monkeypatch.setenv("MROVSEG_CACHE", value)
    assert text_cache.cache_dir() is None
    monkeypatch.delenv("MROVSEG_CACHE")
    assert str(text_cache.cache_dir()).endswith(".cache/mrovseg/text_embeddings")


def test_progress_bar_for_long_vocabularies(toy_backbone: CLIPBackbone, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MROVSEG_CACHE", "off")
    toy_backbone.encode_vocabulary([f"thing {i}" for i in range(6)], ["a {}."], batch_size=2, progress=True)
    assert "encoding vocabulary" in capsys.readouterr().err
    toy_backbone.encode_vocabulary([f"object {i}" for i in range(6)], ["a {}."], batch_size=2)
    assert "encoding vocabulary" not in capsys.readouterr().err  # short: no bar by default


@pytest.mark.slow
def test_truncation_exact_on_vitb16_text_tower() -> None:
    """The real-size ViT-B/16 text tower (random weights, 77-token context)."""
    torch.manual_seed(0)
    backbone = CLIPBackbone("ViT-B-16", pretrained=None)
    tokens = backbone.tokenizer(PROMPTS)
    with torch.no_grad():
        ref = backbone.clip.encode_text(tokens)
    torch.testing.assert_close(backbone.encode_text(tokens), ref, atol=1e-5, rtol=0)
