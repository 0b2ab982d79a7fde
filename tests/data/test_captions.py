"""Captions and the noun rule (docs/mgca.md §2), the caption readers and the toy caption datamodule."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrovseg.data.caption_datamodule import ToyCaptionDataModule
from mrovseg.data.caption_datasets import (
    CaptionFolder,
    CaptionShards,
    CaptionTable,
    RandomResizedCrop,
    caption_dataset,
    make_noun_fn,
)
from mrovseg.data.captions import TEMPLATES, extract_nouns, toy_caption


def test_toy_caption_lists_every_name_once_in_a_template() -> None:
    rng = np.random.default_rng(0)
    cap = toy_caption(["red circle", "blue ring", "green cross"], rng)
    assert any(cap.startswith(t.split("{}")[0]) for t in TEMPLATES) and cap.endswith(".")
    assert sorted(extract_nouns(cap, ["red circle", "blue ring", "green cross"])) == [
        "blue ring",
        "green cross",
        "red circle",
    ]
    assert "background" in toy_caption([], rng)


def test_vocabulary_rule_longest_match_whole_words_caption_order() -> None:
    vocab = ["circle", "red circle", "ring", "blue"]
    assert extract_nouns("A red circle and a blue ring.", vocab) == ["red circle", "blue", "ring"]
    assert extract_nouns("a redcircle, rings", vocab) == []  # whole words only


def test_noun_rule_splits_noun_phrases_and_drops_boilerplate() -> None:
    cap = "A photo of a brown horse on the beach, with two dogs and a red kite in the sky."
    assert extract_nouns(cap) == ["brown horse", "beach", "dog", "red kite", "sky"]  # docs/mgca.md §2
    assert extract_nouns(cap, max_nouns=2) == ["brown horse", "beach"]
    with pytest.raises(TypeError, match="caption must be a string"):
        extract_nouns(None)  # type: ignore[arg-type]


def test_crop_is_albumentations_random_resized_crop_and_flip_with_our_parameters() -> None:
    import albumentations as A

    t = RandomResizedCrop(16, scale=(0.5, 1.0), seed=0)
    crop, flip = t.pipeline.transforms
    assert isinstance(crop, A.RandomResizedCrop) and isinstance(flip, A.HorizontalFlip)
    assert crop.size == (16, 16) and crop.scale == (0.5, 1.0) and flip.p == 0.5
    assert crop.ratio == pytest.approx((3 / 4, 4 / 3))
    image = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = t(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.max() > 0.5
    # a fixed seed repeats the same crops; the per-sample generator of the shard reader too
    t, again = RandomResizedCrop(16, seed=0), RandomResizedCrop(16, seed=0)
    assert all(torch.equal(t(image), again(image)) for _ in range(5))
    assert not all(torch.equal(t(image), t(image)) for _ in range(5))
    assert torch.equal(t(image, np.random.default_rng(7)), again(image, np.random.default_rng(7)))
    # the flip: a whole-image "crop" of a left-to-right ramp, flipped always vs never
    ramp = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(40, 0)
    keep = RandomResizedCrop(40, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, seed=0)(ramp)
    flipped = RandomResizedCrop(40, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=1.0, seed=0)(ramp)
    assert torch.allclose(keep, torch.from_numpy(ramp.transpose(2, 0, 1) / 255.0).float(), atol=1e-6)
    assert torch.equal(flipped, keep.flip(-1))


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buf, format="JPEG")
    return buf.getvalue()


def test_table_folder_and_shard_readers(tmp_path: Path) -> None:
    transform, nouns = RandomResizedCrop(16), make_noun_fn(None)
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(_jpeg((255, 0, 0)))
    (tmp_path / "imgs" / "a.txt").write_text("a red car on a road")
    (tmp_path / "pairs.tsv").write_text("filepath\ttitle\nimgs/a.jpg\ta red car on a road\n")
    shard = tmp_path / "shards" / "00000.tar"
    shard.parent.mkdir()
    with tarfile.open(shard, "w") as tar:  # img2dataset's webdataset layout
        for key, data in [
            ("000000000.jpg", _jpeg((0, 0, 255))),
            ("000000000.txt", b"a blue boat"),
            ("000000000.json", b"{}"),
            ("000000001.jpg", b"not a jpeg"),
            ("000000001.txt", b"broken"),
        ]:
            info = tarfile.TarInfo(key)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    table = caption_dataset(tmp_path / "pairs.tsv", transform, nouns)
    folder = caption_dataset(tmp_path / "imgs", transform, nouns)
    shards = caption_dataset(tmp_path / "shards", transform, nouns)
    assert isinstance(table, CaptionTable) and isinstance(folder, CaptionFolder)
    assert isinstance(shards, CaptionShards)
    for sample in (table[0], folder[0]):
        assert sample["image"].shape == (3, 16, 16) and sample["nouns"] == ["red car", "road"]
        assert sample["image"][0].mean() > 0.9 and sample["image"][2].mean() < 0.1
        assert "label" not in sample
    samples = list(shards)  # the broken image is skipped
    assert [s["nouns"] for s in samples] == [["blue boat"]]
    (tmp_path / "bad.csv").write_text("path,text\nx.jpg,y\n")
    with pytest.raises(ValueError, match="no column 'filepath'"):
        CaptionTable(tmp_path / "bad.csv", transform, nouns)
    with pytest.raises(FileNotFoundError, match="neither"):
        caption_dataset(tmp_path / "missing.csv", transform, nouns)


def test_toy_caption_datamodule_serves_captions_without_masks() -> None:
    dm = ToyCaptionDataModule(num_train=8, batch_size=4, num_val=2, num_test=2)
    assert dm.train_class_names is None
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "caption", "nouns", "name"}  # no label, no mask
    assert batch["image"].shape == (4, 3, 64, 64)
    novel = {dm.world.class_names[k] for k in dm.world.novel_classes}
    for caption, nouns in zip(batch["caption"], batch["nouns"]):
        assert nouns and all(n in caption for n in nouns)
        assert not novel & set(nouns)  # novel objects are not named (caption_novel=False)
    ds = dm.train_dataset()
    assert torch.equal(ds[3]["image"], ds[3]["image"]) and ds[3]["caption"] == ds[3]["caption"]
    # with caption_novel=True some caption names a novel class
    ds_all = ToyCaptionDataModule(num_train=100, caption_novel=True).train_dataset()
    assert any(novel & set(ds_all[i]["nouns"]) for i in range(100))
