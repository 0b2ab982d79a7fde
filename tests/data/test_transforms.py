"""Training augmentation and evaluation resizing: sizes, label values, image-label alignment."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.transforms import EvalTransform, TrainTransform, resize_short_side

from .builders import classify_pixels, stripes


def test_train_output_size_and_values() -> None:
    rng = np.random.default_rng(0)
    t = TrainTransform(crop_size=(24, 32), base_size=20, scale_range=(0.5, 2.0), seed=0)
    for _ in range(20):
        h, w = rng.integers(8, 60, size=2)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        label = rng.integers(-1, 5, (h, w)).astype(np.int32)
        out_image, out_label = t(image, label)
        assert out_image.shape == (24, 32, 3) and out_image.dtype == np.uint8
        assert out_label.shape == (24, 32)
        assert set(np.unique(out_label)) <= {IGNORE_INDEX, 0, 1, 2, 3, 4}


def test_padding_uses_ignore() -> None:
    t = TrainTransform(crop_size=40, base_size=10, scale_range=(1.0, 1.0), hflip_prob=0.0, photometric=False)
    image, label = stripes((10, 14), [7, 7])
    out_image, out_label = t(image, label.astype(np.int32))
    # short side 10 -> 10: the 10x14 image sits top-left, the rest is padding
    np.testing.assert_array_equal(out_label[:10, :14], label)
    assert (out_label[10:] == IGNORE_INDEX).all() and (out_label[:, 14:] == IGNORE_INDEX).all()
    assert (out_image[10:] == 0).all()
    relative = TrainTransform(
        crop_size=40, scale_range=(2.0, 2.0), hflip_prob=0.0, photometric=False, relative_to_image=True
    )
    _, out_label = relative(image, label.astype(np.int32))
    assert (out_label[:20, :28] >= 0).all() and (out_label[20:] == IGNORE_INDEX).all()


def _interior(label: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbours share their class (stripe borders are blended by interpolation)."""
    pad = np.pad(label, 1, mode="edge")
    same = [
        pad[1:-1, 1:-1] == pad[1 + dy : pad.shape[0] - 1 + dy, 1 + dx : pad.shape[1] - 1 + dx]
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))
    ]
    return np.logical_and.reduce(same) & (label != IGNORE_INDEX)


@pytest.mark.parametrize("seed", range(3))
def test_resize_crop_flip_keep_alignment(seed: int) -> None:
    image, label = stripes((60, 80), [6, 10, 14, 20, 30])
    t = TrainTransform(crop_size=48, base_size=60, scale_range=(0.5, 2.0), photometric=False, seed=seed)
    flipped = set()
    for _ in range(12):
        out_image, out_label = t(image, label.astype(np.int32))
        inside = _interior(out_label)
        assert inside.sum() > 100
        np.testing.assert_array_equal(classify_pixels(out_image)[inside], out_label[inside])
        cols = out_label[0][out_label[0] != IGNORE_INDEX]
        assert np.all(np.diff(cols) <= 0) or np.all(np.diff(cols) >= 0)  # stripes stay ordered
        if len(np.unique(cols)) > 1:
            flipped.add(bool(cols[0] > cols[-1]))
    assert flipped == {True, False}  # both orientations occur, each aligned


def test_flip_happens_and_is_aligned() -> None:
    image, label = stripes((32, 32), [4, 28])
    t = TrainTransform(crop_size=32, base_size=32, scale_range=(1.0, 1.0), hflip_prob=1.0, photometric=False)
    out_image, out_label = t(image, label.astype(np.int32))
    np.testing.assert_array_equal(out_label, label[:, ::-1])
    np.testing.assert_array_equal(classify_pixels(out_image), label[:, ::-1])


def test_photometric_changes_colours_not_labels() -> None:
    image, label = stripes((32, 32), [16, 16])
    t = TrainTransform(crop_size=32, base_size=32, scale_range=(1.0, 1.0), hflip_prob=0.0, seed=3)
    changed = 0
    for _ in range(10):
        out_image, out_label = t(image, label.astype(np.int32))
        np.testing.assert_array_equal(out_label, label)
        changed += int(not np.array_equal(out_image, image))
    assert changed > 0


def test_eval_transform_resizes_image_only() -> None:
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    label = np.zeros((30, 50), dtype=np.int32)
    out_image, out_label = EvalTransform(short_side=60)(image, label)
    assert out_image.shape == (60, 100, 3) and out_label.shape == (30, 50)
    assert EvalTransform(short_side=15)(image, label)[0].shape == (15, 25, 3)
    assert resize_short_side(image, 60, max_long_side=80).shape == (48, 80, 3)


class _Repeat(Dataset):
    def __init__(self) -> None:
        self.image, self.label = stripes((40, 40), [10, 30])
        self.t = TrainTransform(crop_size=16, base_size=40, photometric=False)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.t(self.image, self.label.astype(np.int32))[1])


def test_workers_draw_different_augmentations() -> None:
    torch.manual_seed(0)
    batches = list(DataLoader(_Repeat(), batch_size=4, num_workers=2))
    assert not torch.equal(batches[0], batches[1])  # the two workers do not share one RNG state
