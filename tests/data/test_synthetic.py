"""The procedural toy world (`mrovseg.data.synthetic`) and its datamodule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrovseg.config import CONF_DIR
from mrovseg.constants import IGNORE_INDEX
from mrovseg.data.synthetic import (
    COLOURS,
    SHAPES,
    SceneConfig,
    SceneObject,
    ToyWorld,
    coverage,
    draw,
    render_background,
    render_scene,
    sample_objects,
    scene_rng,
    small_region,
)
from mrovseg.data.toy_datamodule import ToyDataModule

NO_NOISE = SceneConfig(height=48, width=64, noise_std=0.0)


def _scene(seed: int, split: str = "train", index: int = 0):
    return render_scene(scene_rng(seed, split, index), ToyWorld(), SceneConfig())


# --- vocabulary and split ---------------------------------------------------------------------------


def test_default_world_has_background_and_30_object_classes() -> None:
    world = ToyWorld()
    assert world.num_classes == 31
    assert world.class_names[:3] == ["background", "red circle", "red square"]
    assert world.class_names[-1] == "magenta cross"
    assert world.parts(world.class_names.index("blue ring")) == (2, 3)


@pytest.mark.parametrize(
    ("colours", "shapes", "novel"), [(6, 5, 6), (8, 7, 20), (3, 2, 3), (8, 7, 48), (2, 2, 0)]
)
def test_split_counts_and_every_colour_and_shape_is_seen(colours: int, shapes: int, novel: int) -> None:
    for seed in range(5):
        world = ToyWorld(colours, shapes, novel, split_seed=seed)
        assert len(world.novel_classes) == novel and len(set(world.novel_classes)) == novel
        assert world.base_classes[0] == 0 and 0 not in world.novel_classes
        assert sorted(world.base_classes + world.novel_classes) == list(range(world.num_classes))
        base_parts = [world.parts(k) for k in world.base_classes[1:]]
        assert {c for c, _ in base_parts} == set(range(colours))
        assert {s for _, s in base_parts} == set(range(shapes))


def test_split_is_deterministic_per_split_seed() -> None:
    assert ToyWorld(split_seed=3).novel_classes == ToyWorld(split_seed=3).novel_classes
    assert len({tuple(ToyWorld(split_seed=s).novel_classes) for s in range(5)}) > 1


def test_impossible_split_raises() -> None:
    with pytest.raises(ValueError, match="num_novel"):
        ToyWorld(6, 5, num_novel=25)  # 30 - 25 = 5 base objects cannot cover 6 colours


@pytest.mark.parametrize(
    ("colours", "shapes", "novel"), [(6, 5, 6), (6, 5, 12), (8, 7, 20), (3, 4, 6), (4, 6, 12)]
)
def test_balanced_split_spreads_novel_classes_over_colours_and_shapes(
    colours: int, shapes: int, novel: int
) -> None:
    for seed in range(5):
        world = ToyWorld(colours, shapes, novel, split_seed=seed, split="balanced")
        parts = [world.parts(k) for k in world.novel_classes]
        assert len(set(world.novel_classes)) == novel and 0 not in world.novel_classes
        per_colour = [sum(c == i for c, _ in parts) for i in range(colours)]
        per_shape = [sum(s == j for _, s in parts) for j in range(shapes)]
        assert max(per_colour) - min(per_colour) <= 1 and max(per_shape) - min(per_shape) <= 1
        base_parts = [world.parts(k) for k in world.base_classes[1:]]
        assert {c for c, _ in base_parts} == set(range(colours)) and {s for _, s in base_parts} == set(
            range(shapes)
        )


def test_balanced_default_world_holds_out_one_class_per_colour() -> None:
    world = ToyWorld(split="balanced")
    assert sorted(world.parts(k)[0] for k in world.novel_classes) == list(range(6))
    assert world.novel_classes == ToyWorld(split="balanced").novel_classes  # deterministic per split_seed
    assert len({tuple(ToyWorld(split_seed=s, split="balanced").novel_classes) for s in range(5)}) > 1
    # the random split of seed 0 holds out 3 yellow shapes (the collapse BENCHMARKS.md traces to it)
    assert sorted(ToyWorld().parts(k)[0] for k in ToyWorld().novel_classes).count(3) == 3


def test_unknown_or_impossible_balanced_split_raises() -> None:
    with pytest.raises(ValueError, match="'random' or 'balanced'"):
        ToyWorld(split="even")
    with pytest.raises(ValueError, match="num_novel=25 cannot be spread evenly over 6 colours and 5 shapes"):
        ToyWorld(6, 5, num_novel=25, split="balanced")


# --- determinism -------------------------------------------------------------------------------------


def test_scene_is_deterministic_per_seed_split_and_index() -> None:
    a, b = _scene(0, index=7), _scene(0, index=7)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.small, b.small)
    for other in (_scene(1, index=7), _scene(0, "val", 7), _scene(0, index=8)):
        assert not np.array_equal(a.image, other.image)


# --- masks match the drawings ------------------------------------------------------------------------


def _square_coverage(cx: float, cy: float, half: float, height: int, width: int) -> np.ndarray:
    """Exact pixel coverage of an axis-aligned square: product of interval overlaps."""
    ox = np.clip(np.minimum(np.arange(width) + 1, cx + half) - np.maximum(np.arange(width), cx - half), 0, 1)
    oy = np.clip(
        np.minimum(np.arange(height) + 1, cy + half) - np.maximum(np.arange(height), cy - half), 0, 1
    )
    return oy[:, None] * ox[None, :]


def _circle_coverage(cx: float, cy: float, r: float, height: int, width: int, n: int = 64) -> np.ndarray:
    """Circle coverage from n² points per pixel, independent of the package's code."""
    off = (np.arange(n) + 0.5) / n
    ys = (np.arange(height)[:, None] + off).ravel()[:, None]
    xs = (np.arange(width)[:, None] + off).ravel()[None, :]
    inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    return inside.reshape(height, n, width, n).mean(axis=(1, 3))


@pytest.mark.parametrize("supersample", [4, 16])
def test_single_object_mask_is_the_coverage_at_least_half_set(supersample: int) -> None:
    height, width, bg = 40, 56, np.zeros((40, 56, 3), np.float32)
    cases = [
        (
            SceneObject(1, "square", (1, 0, 0), cx=37.2, cy=11.9, diameter=13.0),
            _square_coverage(37.2, 11.9, 0.7 * 6.5, 40, 56),
        ),
        (
            SceneObject(1, "circle", (1, 0, 0), cx=12.6, cy=25.2, diameter=9.5),
            _circle_coverage(12.6, 25.2, 4.75, 40, 56),
        ),
        (
            SceneObject(1, "circle", (1, 0, 0), cx=30.0, cy=20.0, diameter=3.0),
            _circle_coverage(30.0, 20.0, 1.5, 40, 56),
        ),
    ]
    for obj, exact in cases:
        _, instances, area = draw(bg, [obj], supersample)
        mask, truth = instances == 1, exact >= 0.5
        sure = np.abs(exact - 0.5) > 1.0 / supersample  # pixels the sampling cannot flip
        np.testing.assert_array_equal(mask[sure], truth[sure])
        if supersample == 16:
            assert (mask != truth).sum() <= 1
        assert area[0] == mask.sum() and mask.any()
        ys, xs = np.nonzero(mask)  # centroid at (cx, cy): no x/y swap or offset
        assert abs(xs.mean() + 0.5 - obj.cx) < 0.5 and abs(ys.mean() + 0.5 - obj.cy) < 0.5
    assert (height, width) == instances.shape


def test_triangle_points_up() -> None:
    obj = SceneObject(1, "triangle", (1, 0, 0), cx=16.0, cy=16.0, diameter=24.0)
    _, instances, _ = draw(np.zeros((32, 32, 3), np.float32), [obj])
    widths = (instances == 1).sum(1)
    rows = np.nonzero(widths)[0]
    assert widths[rows[1]] < widths[rows[-2]]


def test_every_shape_renders_within_its_unit_disc() -> None:
    for shape in SHAPES:
        obj = SceneObject(1, shape, (1, 0, 0), cx=20.0, cy=20.0, diameter=30.0, angle=0.7)
        _, instances, _ = draw(np.zeros((40, 40, 3), np.float32), [obj], 8)
        ys, xs = np.nonzero(instances == 1)
        assert 0.15 * np.pi * 15**2 < len(ys) <= np.pi * 15.5**2, shape
        assert np.hypot(xs + 0.5 - 20, ys + 0.5 - 20).max() <= 15.5, shape
        # nothing is clipped by the object's bounding box: the full-image coverage gives the same mask
        full = coverage(obj, np.arange(40.0), np.arange(40.0), 8) >= 0.5
        np.testing.assert_array_equal(full, instances == 1)


def test_labelled_pixels_show_the_object_colour_and_the_rest_the_background() -> None:
    world, cfg = ToyWorld(), SceneConfig(height=48, width=64, num_objects=(1, 1), noise_std=0.0)
    for index in range(20):
        rng = scene_rng(0, "colours", index)
        bg = render_background(rng, cfg.height, cfg.width)
        (obj,) = sample_objects(rng, world, cfg)
        image, instances, _ = draw(bg, [obj], cfg.supersample)
        to_obj = np.linalg.norm(image - np.asarray(obj.rgb), axis=-1)
        to_bg = np.linalg.norm(image - bg, axis=-1)
        labelled = instances == 1
        assert labelled.any()
        assert (to_obj[labelled] <= to_bg[labelled] + 1e-5).all()
        assert (to_bg[~labelled] <= to_obj[~labelled] + 1e-5).all()


def test_later_objects_occlude_earlier_ones_in_image_and_label() -> None:
    red = SceneObject(1, "square", (1.0, 0.0, 0.0), cx=20.0, cy=20.0, diameter=20.0)
    blue = SceneObject(13, "circle", (0.0, 0.0, 1.0), cx=24.0, cy=20.0, diameter=12.0)
    image, instances, area = draw(np.zeros((40, 40, 3), np.float32), [red, blue], 4)
    only_blue = draw(np.zeros((40, 40, 3), np.float32), [blue], 4)[1] == 1
    np.testing.assert_array_equal(instances == 2, only_blue)
    assert area[1] == only_blue.sum() and area[0] > (instances == 1).sum()
    assert (image[instances == 2][:, 2] >= 0.5).all() and (image[instances == 1][:, 0] >= 0.5).all()


def test_scene_label_is_the_class_of_each_visible_object() -> None:
    world = ToyWorld()
    for index in range(10):
        scene = render_scene(scene_rng(0, "train", index), world, NO_NOISE)
        class_of = np.array([0] + [o.class_id for o in scene.objects])
        np.testing.assert_array_equal(scene.label, class_of[scene.instances])
        for j, obj in enumerate(scene.objects):
            pixels = scene.image[scene.instances == j + 1]
            if obj.diameter >= 12:  # enough pixels that are not anti-aliased edges
                assert np.abs(np.median(pixels, axis=0) - obj.rgb).max() < 0.1
            assert 0.0 <= scene.visible[j] <= 1.0
        assert scene.label.dtype == np.int64 and scene.image.dtype == np.float32
        assert scene.image.min() >= 0.0 and scene.image.max() <= 1.0


def test_palette_and_shapes_give_the_documented_maximum() -> None:
    assert ToyWorld(len(COLOURS), len(SHAPES), 0).num_classes == len(COLOURS) * len(SHAPES) + 1


# --- small-object region -----------------------------------------------------------------------------


def test_small_region_is_small_objects_dilated_by_the_margin() -> None:
    # diameter == threshold: small
    small = SceneObject(1, "circle", (1, 0, 0), cx=10.0, cy=10.0, diameter=8.0)
    large = SceneObject(2, "circle", (0, 1, 0), cx=40.0, cy=30.0, diameter=16.0)
    _, instances, _ = draw(np.zeros((48, 64, 3), np.float32), [small, large])
    region = small_region(instances, [small, large], small_diameter=8.0, margin=2)
    ys, xs = np.nonzero(instances == 1)
    expected = np.zeros_like(region)
    for y, x in zip(ys, xs):
        expected[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = True
    np.testing.assert_array_equal(region, expected)
    assert not region[instances == 2].any()
    np.testing.assert_array_equal(small_region(instances, [small, large], 8.0, 0), instances == 1)
    assert not small_region(instances, [small, large], 7.9, 2).any()


def test_small_region_dilation_at_the_image_border_matches_a_box_reference() -> None:
    rng = np.random.default_rng(3)
    objects = [SceneObject(j + 1, "circle", (1, 0, 0), cx=0.0, cy=0.0, diameter=4.0) for j in range(3)]
    instances = rng.integers(0, 12, size=(9, 11))  # ids 1-3 small, scattered, touching every border
    instances[0, 0] = instances[-1, -1] = 1
    for margin in (1, 2, 3):
        region = small_region(instances, objects, small_diameter=8.0, margin=margin)
        expected = np.zeros(instances.shape, bool)
        for y, x in zip(*np.nonzero(np.isin(instances, [1, 2, 3]))):
            expected[max(y - margin, 0) : y + margin + 1, max(x - margin, 0) : x + margin + 1] = True
        np.testing.assert_array_equal(region, expected)


def test_scene_small_region_follows_its_config() -> None:
    cfg = SceneConfig(small_diameter=8.0, small_margin=1)
    found = 0
    for index in range(10):
        scene = render_scene(scene_rng(0, "train", index), ToyWorld(), cfg)
        expected = small_region(scene.instances, scene.objects, 8.0, 1)
        np.testing.assert_array_equal(scene.small, expected)
        found += scene.small.any()
    assert found > 0


# --- datamodule ---------------------------------------------------------------------------------------


def _datamodule(**kwargs) -> ToyDataModule:
    return ToyDataModule(**{"num_train": 8, "num_val": 2, "num_test": 3, "batch_size": 4, **kwargs})


def test_train_batches_follow_the_contract_with_novel_pixels_ignored() -> None:
    dm = _datamodule()
    assert len(dm.train_class_names) == 25 and dm.train_class_names[0] == "background"
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
    assert batch["label"].shape == (4, 64, 64) and batch["label"].dtype == torch.int64
    assert batch["regions"]["small"].shape == (4, 64, 64) and batch["regions"]["small"].dtype == torch.bool
    assert len(batch["name"]) == 4 and all(n.startswith("toy_train_") for n in batch["name"])
    values = set(batch["label"].unique().tolist())
    assert values <= set(range(25)) | {IGNORE_INDEX}
    # Each training label names the same class as the world's label; novel pixels are ignored.
    names, world = dm.world.class_names, dm.world
    saw_novel = False
    for index in range(8):
        train = dm.train_dataset()[index]["label"].numpy()
        full = render_scene(scene_rng(0, "train", index), world, dm.train_cfg).label
        novel = np.isin(full, world.novel_classes)
        saw_novel |= novel.any()
        assert (train[novel] == IGNORE_INDEX).all() and (train[~novel] >= 0).all()
        assert all(dm.train_class_names[t] == names[f] for t, f in zip(train[~novel], full[~novel]))
    assert saw_novel


def test_cached_training_scenes_are_the_rendered_ones_on_every_epoch() -> None:
    cached = _datamodule(cache_train=True).train_dataset()
    fresh = _datamodule().train_dataset()
    for _epoch in range(2):  # the first pass renders and keeps, the second serves the kept scenes
        for index in (0, 5, 5):
            a, b = cached[index], fresh[index]
            assert a["name"] == b["name"] and a["image"].dtype == b["image"].dtype == torch.float32
            assert torch.equal(a["image"], b["image"]) and torch.equal(
                a["regions"]["small"], b["regions"]["small"]
            )
            assert a["label"].dtype == torch.int64 and torch.equal(a["label"], b["label"])
    assert sorted(cached._cache) == [0, 5] and fresh._cache is None
    # A batch stacks copies: writing to it leaves the kept scene as rendered.
    batch = next(iter(torch.utils.data.DataLoader(cached, batch_size=2)))
    batch["image"].zero_()
    batch["label"].zero_()
    assert torch.equal(cached[0]["image"], fresh[0]["image"]) and torch.equal(
        cached[0]["label"], fresh[0]["label"]
    )


def test_datamodule_passes_the_split_rule_to_its_world() -> None:
    balanced = _datamodule(split="balanced", split_seed=3)
    assert balanced.world.novel_classes == ToyWorld(split_seed=3, split="balanced").novel_classes
    assert balanced.world.novel_classes != _datamodule(split_seed=3).world.novel_classes
    assert [balanced.world.class_names[k] for k in balanced.world.base_classes] == balanced.train_class_names


def test_eval_batches_and_benchmarks() -> None:
    dm = _datamodule()
    (info,) = dm.eval_benchmarks
    assert info.name == "toy" and len(info.class_names) == 31 and info.class_names[0] == "background"
    assert info.seen_classes == dm.world.base_classes and len(info.seen_classes) == 25
    (val,), (test,) = dm.val_dataloader(), dm.test_dataloader()
    assert len(val.dataset) == 2 and len(test.dataset) == 3
    batch = next(iter(val))
    assert batch["image"].shape == (1, 3, 96, 128) and batch["label"].shape == (1, 96, 128)
    assert batch["label"].min() >= 0 and batch["label"].max() < 31
    assert batch["regions"]["small"].shape == (1, 96, 128)
    assert not torch.equal(batch["image"], next(iter(test))["image"])  # val and test are different scenes


def test_eval_short_side_resizes_the_image_but_not_the_label() -> None:
    sample = _datamodule(eval_short_side=64).eval_dataset("val")[0]
    assert sample["image"].shape == (3, 64, 85) and sample["label"].shape == (96, 128)


def test_datamodule_is_deterministic_per_seed() -> None:
    a, b, c = (_datamodule(seed=s).train_dataset()[3] for s in (0, 0, 1))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(a["image"], c["image"])


def test_hydra_config_instantiates_the_datamodule() -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(CONF_DIR / "data" / "toy.yaml")
    dm = instantiate(cfg)
    assert isinstance(dm, ToyDataModule)
    assert (
        dm.eval_cfg.height == 96 and dm.train_cfg.width == 64 and len(dm.eval_benchmarks[0].class_names) == 31
    )


def test_shipped_toy_clip_recognises_objects_of_this_world() -> None:
    """The world and the checkpoint in assets/toy_clip must stay in step (it was pretrained on it)."""
    import open_clip

    from mrovseg.constants import ASSETS_DIR

    folder = ASSETS_DIR / "toy_clip"
    open_clip.add_model_config(folder / "toy-vit-p4-32.json")
    model = open_clip.create_model("toy-vit-p4-32", pretrained=str(folder / "toy-vit-p4-32.pt")).eval()
    tokenizer = open_clip.get_tokenizer("toy-vit-p4-32")
    world, cfg = ToyWorld(), SceneConfig(32, 32, (1, 1), (14.0, 20.0), log_uniform=False)
    labels = [1 + i % 30 for i in range(120)]
    images = np.stack(
        [render_scene(scene_rng(0, "clip-check", i), world, cfg, [k]).image for i, k in enumerate(labels)]
    )
    x = (torch.from_numpy(images).permute(0, 3, 1, 2) - 0.5) / 0.25
    with torch.no_grad():
        text = model.encode_text(
            tokenizer([f"a photo of a {n}." for n in world.class_names[1:]]), normalize=True
        )
        pred = (model.encode_image(x, normalize=True) @ text.T).argmax(1) + 1
    assert (pred == torch.tensor(labels)).float().mean() >= 0.9
