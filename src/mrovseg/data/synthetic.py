"""A procedural open-vocabulary world: coloured shapes on a textured, noisy background.

The default experiment trains and evaluates on CPU in minutes, so it needs a world whose
vocabulary is compositional (every class is "<colour> <shape>") and whose ground truth is
exact. Class 0 is ``"background"`` and always a *base* class, so false positives on
background pixels are scored; object classes are ``1 .. C·S`` in colour-major order
(``"red circle", "red square", …``). With the defaults (6 colours × 5 shapes) the benchmark
has K = 31 classes.

Rendering (:func:`draw`): every object is an analytic shape (:data:`SHAPES`) evaluated at
``supersample²`` points per pixel inside its bounding box. Its anti-aliased coverage blends its
colour over the image, and a pixel is labelled with the object whose coverage there is ≥ 0.5;
later objects occlude earlier ones in both image and label. Label and image come from the same
coverage, so masks match the drawing exactly; the coverage itself approximates the analytic area
to within ``1 / supersample`` per pixel. Everything is vectorised numpy per object, and a scene
depends only on the generator it is given (:func:`scene_rng` derives one from
``(seed, split, index)``), so each scene is reproducible on its own. Objects are placed as the
least overlapping of a few candidate positions, sized in a range that includes small objects of a
few pixels; :func:`small_region` marks them for small-object IoU.

The base/novel split (:class:`ToyWorld`) keeps every colour and every shape among the base
classes, so novel classes are new *combinations* of seen words — the open-vocabulary setting.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import binary_dilation

#: Colour names and their RGB in [0, 1]; a world uses the first ``num_colours``.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.10, 0.72, 0.20),
    "blue": (0.12, 0.28, 0.95),
    "yellow": (0.95, 0.88, 0.10),
    "cyan": (0.10, 0.85, 0.90),
    "magenta": (0.88, 0.15, 0.85),
    "orange": (1.00, 0.55, 0.05),
    "white": (0.97, 0.97, 0.97),
}

BACKGROUND = "background"

Inside = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _star(u: np.ndarray, v: np.ndarray, inner: float = 0.45) -> np.ndarray:
    """Five-pointed star of outer radius 1 pointing up (``v`` grows downwards)."""
    sector = 2 * np.pi / 5
    phi = np.mod(np.arctan2(u, -v), sector)  # angle from the upward tip, folded to one sector
    phi = np.minimum(phi, sector - phi)  # mirror: the tip is at 0, the notch at sector / 2
    # Edge from the tip (1, 0) to the notch (inner·cos, inner·sin) in sector coordinates.
    px, py = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    nx, ny = py, 1.0 - px  # normal of the edge; the edge is {X : n·X = nx}
    radius = np.sqrt(u * u + v * v)
    return radius * (nx * np.cos(phi) + ny * np.sin(phi)) <= nx


#: Shape name → inside test in the object frame: ``(u, v)`` are offsets from the centre divided
#: by the radius (half the diameter), ``v`` pointing down the image. Every shape fits the unit disc
#: (the diameter is that of the circumscribed circle), so a rotated shape never leaves its bounding box.
SHAPES: dict[str, Inside] = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.7,
    "triangle": lambda u, v: (v <= 0.5) & (np.sqrt(3.0) * np.abs(u) <= v + 1.0),  # equilateral, apex up
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2),
    "cross": lambda u, v: (
        ((np.abs(u) <= 0.3) | (np.abs(v) <= 0.3)) & (np.maximum(np.abs(u), np.abs(v)) <= 0.95)
    ),
    "diamond": lambda u, v: np.abs(u) / 0.65 + np.abs(v) <= 1.0,  # a tall rhombus, unlike a turned square
    "star": _star,
}


class ToyWorld:
    """The class vocabulary of the world and its base/novel split.

    Args:
        num_colours: How many of :data:`COLOURS` to use (1–8).
        num_shapes: How many of :data:`SHAPES` to use (1–7).
        num_novel: Object classes held out of training.
        split_seed: Seed of the base/novel split.
        split: ``"random"`` (any novel set that leaves every colour and shape seen) or ``"balanced"``
            (novel classes spread evenly over colours and shapes: no colour or shape holds more than its
            share, ``ceil(num_novel / colours)`` and ``ceil(num_novel / shapes)``). On the default world a
            random split can hold out 3 of one colour's 5 shapes, and whether that colour generalises then
            decides the run's novel mIoU (BENCHMARKS.md, "where the novel collapse sits").
    """

    def __init__(
        self,
        num_colours: int = 6,
        num_shapes: int = 5,
        num_novel: int = 6,
        split_seed: int = 0,
        split: str = "random",
    ):
        if not (1 <= num_colours <= len(COLOURS) and 1 <= num_shapes <= len(SHAPES)):
            raise ValueError(f"need 1-{len(COLOURS)} colours and 1-{len(SHAPES)} shapes")
        if split not in ("random", "balanced"):
            raise ValueError(f"split must be 'random' or 'balanced', got {split!r}")
        self.colours = list(COLOURS)[:num_colours]
        self.shapes = list(SHAPES)[:num_shapes]
        self.class_names = [BACKGROUND] + [f"{c} {s}" for c in self.colours for s in self.shapes]
        draw = self._balanced_split if split == "balanced" else self._split
        self.novel_classes = draw(num_novel, split_seed)
        self.base_classes = [k for k in range(self.num_classes) if k not in self.novel_classes]

    @property
    def num_classes(self) -> int:
        """K: background plus every colour-shape combination."""
        return len(self.class_names)

    def parts(self, class_id: int) -> tuple[int, int]:
        """Colour and shape index of an object class (``class_id >= 1``)."""
        return divmod(class_id - 1, len(self.shapes))

    def _split(self, num_novel: int, seed: int) -> list[int]:
        """Novel classes; a random "covering" set of base classes keeps every colour and shape seen."""
        n_c, n_s = len(self.colours), len(self.shapes)
        cover = max(n_c, n_s)
        if not 0 <= num_novel <= n_c * n_s - cover:
            raise ValueError(
                f"num_novel must be in [0, {n_c * n_s - cover}] to keep every colour and shape seen"
            )
        rng = np.random.default_rng(seed)
        colours, shapes = rng.permutation(n_c), rng.permutation(n_s)
        keep = {1 + colours[i % n_c] * n_s + shapes[i % n_s] for i in range(cover)}
        rest = [k for k in range(1, n_c * n_s + 1) if k not in keep]
        return sorted(int(k) for k in rng.choice(rest, size=num_novel, replace=False))

    def _balanced_split(self, num_novel: int, seed: int) -> list[int]:
        """Novel classes dealt on the diagonal of a shuffled colour × shape grid: the i-th is colour i mod C and
        shape (i + i div lcm(C, S)) mod S, so no (colour, shape) pair repeats and, for num_novel <= lcm(C, S),
        every colour holds floor or ceil of num_novel / C novel classes and every shape of num_novel / S."""
        n_c, n_s = len(self.colours), len(self.shapes)
        rng = np.random.default_rng(seed)
        colours, shapes = rng.permutation(n_c), rng.permutation(n_s)
        lcm = math.lcm(n_c, n_s)
        picks = [(colours[i % n_c], shapes[(i + i // lcm) % n_s]) for i in range(num_novel)]
        novel = sorted({int(1 + c * n_s + s) for c, s in picks})
        base = [self.parts(k) for k in range(1, n_c * n_s + 1) if k not in novel]
        if len(novel) != num_novel or len({c for c, _ in base}) < n_c or len({s for _, s in base}) < n_s:
            raise ValueError(
                f"num_novel={num_novel} cannot be spread evenly over {n_c} colours and {n_s} shapes "
                "while every colour and shape keeps a base class; use split='random' or fewer novel classes"
            )
        return novel


@dataclass(frozen=True)
class SceneObject:
    """One drawn object, in continuous pixel coordinates (pixel ``(i, j)`` spans ``[j, j+1) × [i, i+1)``)."""

    class_id: int
    shape: str
    rgb: tuple[float, float, float]
    cx: float
    cy: float
    diameter: float
    angle: float = 0.0  # rotation in radians


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are laid out and rendered.

    Attributes:
        height: Scene height in pixels.
        width: Scene width in pixels.
        num_objects: Inclusive range of the object count.
        diameter_range: Inclusive range of object diameters in pixels.
        log_uniform: Draw diameters log-uniformly (more small objects) instead of uniformly.
        supersample: Coverage samples per pixel side.
        noise_std: Gaussian pixel noise added last.
        candidates: Candidate centres per object; the least overlapping one is kept.
        small_diameter: Objects with diameter ≤ this are *small* (see :func:`small_region`).
        small_margin: Dilation (pixels, square kernel) of the small-object region.
    """

    height: int = 64
    width: int = 64
    num_objects: tuple[int, int] = (1, 4)
    diameter_range: tuple[float, float] = (5.0, 32.0)
    log_uniform: bool = True
    supersample: int = 4
    noise_std: float = 0.04
    candidates: int = 8
    small_diameter: float = 8.0
    small_margin: int = 2


@dataclass
class Scene:
    """A rendered scene; arrays are numpy, ``(H, W, …)``."""

    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    label: np.ndarray  # (H, W) int64 class ids, 0 = background
    instances: np.ndarray  # (H, W) int32: 0 = background, j + 1 = objects[j]
    objects: list[SceneObject]
    visible: np.ndarray  # (n,) visible fraction of each object's coverage ≥ 0.5 area
    small: np.ndarray  # (H, W) bool small-object region


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of ``split``, independent of every other scene."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def coverage(obj: SceneObject, ys: np.ndarray, xs: np.ndarray, supersample: int) -> np.ndarray:
    """Fraction of each pixel ``(ys[i], xs[j])`` inside ``obj``, from ``supersample²`` points per pixel.

    Returns:
        ``(len(ys), len(xs))`` float32 coverage in [0, 1].
    """
    offsets = (np.arange(supersample) + 0.5) / supersample
    sy = (ys[:, None] + offsets).reshape(-1, 1) - obj.cy  # (h·s, 1)
    sx = (xs[:, None] + offsets).reshape(1, -1) - obj.cx  # (1, w·s)
    cos, sin, r = np.cos(obj.angle), np.sin(obj.angle), obj.diameter / 2
    u, v = (cos * sx - sin * sy) / r, (sin * sx + cos * sy) / r  # rotate into the object frame
    inside = SHAPES[obj.shape](u, v).astype(np.float32)
    return inside.reshape(len(ys), supersample, len(xs), supersample).mean(axis=(1, 3))


def draw(
    background: np.ndarray, objects: Sequence[SceneObject], supersample: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint ``objects`` in order over ``background``.

    Args:
        background: ``(H, W, 3)`` image.
        objects: Objects, back to front.
        supersample: Coverage samples per pixel side.

    Returns:
        image ``(H, W, 3)``; instance map ``(H, W)`` (0 background, ``j + 1`` = ``objects[j]``,
        where its coverage ≥ 0.5 and no later object's is); the unoccluded coverage ≥ 0.5 area of
        each object in pixels ``(n,)``.
    """
    height, width, _ = background.shape
    image = background.astype(np.float32, copy=True)
    instances = np.zeros((height, width), np.int32)
    area = np.zeros(len(objects), np.int64)
    for j, obj in enumerate(objects):
        r = obj.diameter / 2
        y0, y1 = max(int(obj.cy - r), 0), min(int(np.ceil(obj.cy + r)), height)
        x0, x1 = max(int(obj.cx - r), 0), min(int(np.ceil(obj.cx + r)), width)
        if y0 >= y1 or x0 >= x1:
            continue
        cov = coverage(obj, np.arange(y0, y1), np.arange(x0, x1), supersample)[..., None]
        patch = image[y0:y1, x0:x1]
        patch[:] = patch * (1 - cov) + cov * np.asarray(obj.rgb, np.float32)
        mask = cov[..., 0] >= 0.5
        instances[y0:y1, x0:x1][mask] = j + 1
        area[j] = mask.sum()
    return image, instances, area


def small_region(
    instances: np.ndarray, objects: Sequence[SceneObject], small_diameter: float, margin: int
) -> np.ndarray:
    """Pixels of small objects, dilated so that false positives next to them count.

    An object is *small* when its drawn diameter is ≤ ``small_diameter`` pixels; the region is
    the union of the visible pixels of small objects, dilated by ``margin`` pixels with a square
    ``(2·margin + 1)²`` kernel. Small-object IoU is computed inside this region only.
    """
    ids = [j + 1 for j, o in enumerate(objects) if o.diameter <= small_diameter]
    region = np.isin(instances, ids)
    if margin <= 0 or not region.any():
        return region
    return binary_dilation(region, structure=np.ones((2 * margin + 1, 2 * margin + 1), dtype=bool))


def render_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-saturation base colour + low-frequency blobs + a faint grating, ``(H, W, 3)`` float32."""
    base = rng.uniform(0.25, 0.55) + rng.uniform(-0.06, 0.06, size=3)
    grid = rng.normal(0.0, 0.08, size=(4, 4, 3))  # blobs: a 4×4 field, bilinearly upsampled
    wy, wx = _linear_weights(4, height), _linear_weights(4, width)
    blobs = np.stack([wy @ grid[..., c] @ wx.T for c in range(3)], axis=-1)
    yy, xx = np.mgrid[0:height, 0:width]
    theta, period = rng.uniform(0, np.pi), rng.uniform(3.0, 10.0)
    phase = 2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 2 * np.pi)
    grating = rng.uniform(0.0, 0.04) * np.sin(phase)
    return (base + blobs + grating[..., None]).astype(np.float32)


def _linear_weights(n: int, size: int) -> np.ndarray:
    """``(size, n)`` bilinear interpolation weights from ``n`` knots spread over ``size`` pixels."""
    pos = np.clip((np.arange(size) + 0.5) / size * (n - 1), 0, n - 1)
    lo = np.minimum(pos.astype(int), n - 2)
    w = np.zeros((size, n))
    w[np.arange(size), lo] = 1 - (pos - lo)
    w[np.arange(size), lo + 1] = pos - lo
    return w


def sample_objects(
    rng: np.random.Generator, world: ToyWorld, cfg: SceneConfig, classes: Sequence[int] | None = None
) -> list[SceneObject]:
    """Random objects for one scene: classes, colours (jittered), sizes, angles and positions.

    Args:
        rng: The scene's generator.
        world: The vocabulary.
        cfg: Layout settings.
        classes: Object classes to draw from (default: every object class).
    """
    classes = list(range(1, world.num_classes)) if classes is None else list(classes)
    lo, hi = cfg.diameter_range
    placed: list[SceneObject] = []
    for _ in range(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1)):
        class_id = int(rng.choice(classes))
        colour, shape = world.parts(class_id)
        rgb = np.asarray(COLOURS[world.colours[colour]]) * rng.uniform(0.75, 1.1) + rng.uniform(
            -0.05, 0.05, 3
        )
        diameter = float(
            np.exp(rng.uniform(np.log(lo), np.log(hi))) if cfg.log_uniform else rng.uniform(lo, hi)
        )
        r = diameter / 2
        cy = rng.uniform(min(r, cfg.height / 2), max(cfg.height - r, cfg.height / 2), cfg.candidates)
        cx = rng.uniform(min(r, cfg.width / 2), max(cfg.width - r, cfg.width / 2), cfg.candidates)
        overlap = np.zeros(cfg.candidates)
        for o in placed:  # penetration depth of bounding circles, squared
            overlap += np.maximum(0.0, r + o.diameter / 2 - np.hypot(cx - o.cx, cy - o.cy)) ** 2
        best = int(np.argmin(overlap))
        angle = float(rng.uniform(-np.pi / 12, np.pi / 12))
        rgb_t = tuple(float(c) for c in np.clip(rgb, 0.0, 1.0))
        placed.append(
            SceneObject(
                class_id, world.shapes[shape], rgb_t, float(cx[best]), float(cy[best]), diameter, angle
            )
        )
    return placed


def render_scene(
    rng: np.random.Generator, world: ToyWorld, cfg: SceneConfig, classes: Sequence[int] | None = None
) -> Scene:
    """Lay out, draw and label one scene.

    Args:
        rng: The scene's generator (e.g. from :func:`scene_rng`); the scene depends on nothing else.
        world: The vocabulary.
        cfg: Layout and rendering settings.
        classes: Object classes to draw from (default: every object class).
    """
    background = render_background(rng, cfg.height, cfg.width)
    objects = sample_objects(rng, world, cfg, classes)
    image, instances, area = draw(background, objects, cfg.supersample)
    if cfg.noise_std > 0:
        image = image + rng.normal(0.0, cfg.noise_std, image.shape).astype(np.float32)
    class_of = np.asarray([0] + [o.class_id for o in objects], np.int64)
    counts = np.bincount(instances.ravel(), minlength=len(objects) + 1)[1:]
    return Scene(
        image=np.clip(image, 0.0, 1.0),
        label=class_of[instances],
        instances=instances,
        objects=objects,
        visible=counts / np.maximum(area, 1),
        small=small_region(instances, objects, cfg.small_diameter, cfg.small_margin),
    )


def to_sample(scene: Scene, name: str) -> dict:
    """A dataset sample in the contract of ``docs/contracts.md`` (labels are the world's class ids)."""
    return {
        "image": torch.from_numpy(np.ascontiguousarray(scene.image.transpose(2, 0, 1))),
        "label": torch.from_numpy(scene.label),
        "name": name,
        "regions": {"small": torch.from_numpy(scene.small)},
    }
