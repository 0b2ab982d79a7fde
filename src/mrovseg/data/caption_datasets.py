"""Image–caption readers for text-supervised training (MGCA-style; docs/mgca.md §2). No mask is read.

Three layouts, chosen by :func:`caption_dataset` from the source path:

* **CSV / TSV** (``.csv``, ``.tsv``): a header row with an image column (default ``filepath``,
  open_clip's convention) and a caption column (default ``title``); image paths relative to the
  file's folder unless absolute.
* **Folder** of images with a caption file of the same stem (``0001.jpg`` + ``0001.txt``), searched
  recursively.
* **webdataset shards** as img2dataset writes them (``--output_format webdataset``): a folder of
  ``*.tar`` files (or one ``.tar``) whose members share a key, ``<key>.jpg`` (or ``.png``/``.webp``)
  and ``<key>.txt``; read sequentially with :mod:`tarfile`, shards split over dataloader workers.

Every sample is ``{"image": (3, S, S) float in [0, 1], "caption": str, "nouns": list[str], "name": str}``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from mrovseg.data.captions import extract_nouns
from mrovseg.data.image_io import load_image, to_uint8_rgb

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

__all__ = ["CaptionFolder", "CaptionShards", "CaptionTable", "RandomResizedCrop", "caption_dataset"]


class RandomResizedCrop:
    """The training crop of caption data (docs/mgca.md §2), with albumentations as the mask pipeline
    (:mod:`mrovseg.data.transforms`): ``A.RandomResizedCrop`` of ``scale`` of the area with an aspect
    ratio in ``ratio`` (log-uniform, torchvision's rule), resized to ``size²`` (bilinear; area
    averaging when shrinking, like PIL's antialiased bilinear), then ``A.HorizontalFlip(p=hflip)``.

    Returns ``(3, size, size)`` float in [0, 1]. Randomness: ``rng`` given (the shard reader's
    per-worker generator) seeds the call from it, so the output is a function of ``rng``'s state;
    otherwise the pipeline's own generator, seeded by ``seed``, or, with ``seed=None``, once per
    DataLoader worker from its torch seed (albumentations' ``Compose`` keeps its own RNG, which forked
    workers would otherwise share; ``seed_everything`` makes runs repeatable).
    """

    def __init__(
        self,
        size: int,
        scale: Sequence[float] = (0.5, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        seed: int | None = None,
    ):
        self.size, self.scale, self.ratio, self.hflip = int(size), tuple(scale), tuple(ratio), hflip
        crop = A.RandomResizedCrop(
            size=(self.size, self.size),
            scale=self.scale,
            ratio=self.ratio,
            interpolation=cv2.INTER_LINEAR,
            area_for_downscale="image",
        )
        self.pipeline = A.Compose([crop, A.HorizontalFlip(p=hflip)], seed=seed)
        self._fixed_seed = seed is not None
        self._seeded_for: tuple[int, int] | None = None

    def _reseed_in_worker(self) -> None:
        info = get_worker_info()
        seed = info.seed if info is not None else torch.initial_seed()
        if (os.getpid(), seed) != self._seeded_for:
            self.pipeline.set_random_seed(seed % 2**32)
            self._seeded_for = (os.getpid(), seed)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        if rng is not None:
            self.pipeline.set_random_seed(int(rng.integers(2**32)))
        elif not self._fixed_seed:
            self._reseed_in_worker()
        arr = self.pipeline(image=image)["image"].astype(np.float32) / 255.0
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


NounFn = Callable[[str], list[str]]


def make_noun_fn(vocabulary: Sequence[str] | None, max_words: int = 3, max_nouns: int | None = 8) -> NounFn:
    """The noun rule of :func:`mrovseg.data.captions.extract_nouns` with fixed options."""
    vocab = list(vocabulary) if vocabulary is not None else None
    return lambda caption: extract_nouns(caption, vocab, max_words, max_nouns)


def _sample(
    image: np.ndarray,
    caption: str,
    name: str,
    transform: RandomResizedCrop,
    nouns: NounFn,
    rng: np.random.Generator | None = None,
) -> dict:
    caption = " ".join(caption.split())
    return {"image": transform(image, rng), "caption": caption, "nouns": nouns(caption), "name": name}


class CaptionTable(Dataset):
    """Image–caption pairs listed in a CSV/TSV file."""

    def __init__(
        self,
        path: str | Path,
        transform: RandomResizedCrop,
        nouns: NounFn,
        image_col: str = "filepath",
        caption_col: str = "title",
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Caption table not found: {self.path}.")
        delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        with self.path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            cols = reader.fieldnames or []
            for col in (image_col, caption_col):
                if col not in cols:
                    raise ValueError(
                        f"{self.path}: no column {col!r}; the header has {cols}. Set image_col/caption_col."
                    )
            self.rows = [(r[image_col], r[caption_col] or "") for r in reader]
        if not self.rows:
            raise ValueError(f"{self.path}: no rows.")
        self.transform, self.nouns = transform, nouns

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        rel, caption = self.rows[index]
        path = Path(rel) if Path(rel).is_absolute() else self.path.parent / rel
        return _sample(load_image(path), caption, path.stem, self.transform, self.nouns)


class CaptionFolder(Dataset):
    """Images with a same-stem ``.txt`` caption, searched recursively under ``root``."""

    def __init__(self, root: str | Path, transform: RandomResizedCrop, nouns: NounFn):
        self.root = Path(root)
        self.items = sorted(
            p
            for p in self.root.rglob("*")
            if p.suffix.lower() in IMAGE_EXTS and p.with_suffix(".txt").is_file()
        )
        if not self.items:
            raise ValueError(
                f"{self.root}: no image with a same-stem .txt caption (extensions {IMAGE_EXTS})."
            )
        self.transform, self.nouns = transform, nouns

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        p = self.items[index]
        return _sample(
            load_image(p),
            p.with_suffix(".txt").read_text(encoding="utf-8"),
            p.stem,
            self.transform,
            self.nouns,
        )


def read_shard(path: str | Path) -> Iterator[tuple[str, bytes, str]]:
    """``(key, image bytes, caption)`` of every complete sample of an img2dataset webdataset tar."""
    pending: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path, "r|*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            key, _, ext = name.partition(".")
            ext = "." + ext.lower()
            if ext not in (*IMAGE_EXTS, ".txt"):
                continue
            f = tar.extractfile(member)
            if f is None:
                continue
            entry = pending.setdefault(key, {})
            entry["txt" if ext == ".txt" else "img"] = f.read()
            if "txt" in entry and "img" in entry:
                del pending[key]
                yield key, entry["img"], entry["txt"].decode("utf-8", errors="replace")


class CaptionShards(IterableDataset):
    """webdataset tar shards (img2dataset layout); shards are divided between workers, shuffled per epoch."""

    def __init__(
        self, shards: Sequence[str | Path], transform: RandomResizedCrop, nouns: NounFn, seed: int = 0
    ):
        self.shards = [Path(s) for s in shards]
        if not self.shards:
            raise ValueError("No .tar shard given.")
        missing = [str(s) for s in self.shards if not s.is_file()]
        if missing:
            raise FileNotFoundError(f"Shards not found: {missing[:5]}")
        self.transform, self.nouns, self.seed, self.epoch = transform, nouns, seed, 0

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch, wid])
        self.epoch += 1
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        for i in order[wid::nw]:
            for key, data, caption in read_shard(self.shards[i]):
                try:
                    image = to_uint8_rgb(Image.open(io.BytesIO(data)))
                except Exception as err:  # a broken download: skip it, as webdataset's handlers can
                    log.warning("Skipping %s:%s, not a readable image: %s", self.shards[i], key, err)
                    continue
                yield _sample(image, caption, key, self.transform, self.nouns, rng)


def caption_dataset(
    source: str | Path,
    transform: RandomResizedCrop,
    nouns: NounFn,
    image_col: str = "filepath",
    caption_col: str = "title",
) -> Dataset | IterableDataset:
    """The reader of ``source``: a CSV/TSV file, a ``.tar`` shard or folder of shards, or a folder of images + .txt."""
    src = Path(source).expanduser()
    if src.is_file() and src.suffix.lower() in (".csv", ".tsv"):
        return CaptionTable(src, transform, nouns, image_col, caption_col)
    if src.is_file() and src.suffix.lower() == ".tar":
        return CaptionShards([src], transform, nouns)
    if src.is_dir():
        shards = sorted(src.glob("*.tar"))
        return CaptionShards(shards, transform, nouns) if shards else CaptionFolder(src, transform, nouns)
    raise FileNotFoundError(f"Caption source {src} is neither a .csv/.tsv file, a .tar shard nor a folder.")
