"""A deterministic synthetic dataset in the exact PASCAL VOC 2012 layout, for demos, tests and quality measurements.

Classes differ by shape, by texture and by a class-correlated hue (jittered, with no overlap between classes):
from-scratch networks learn shape+texture alone too slowly for a demo budget, the colour cue makes the classes
learnable. Objects are solid and compact, often repeat a class, and may touch or overlap (later objects are drawn
on top and the masks follow the same order). Ground truth follows VOC: palette PNGs with a void (255) band about
2 px wide along every object boundary, instance ids 1..M in ``SegmentationObject``, XML with filename, size,
object names and boxes (the visible extent of each instance), and ``ImageSets/Segmentation/{train_aug,train}.txt``
(and ``val.txt``: ``n_val`` held-out images after train_aug).

Two presets (:data:`DEMO_PRESETS`, one frozen :class:`DemoPreset` each) choose what a scene holds:

``standard`` (default; the pipeline's demo thresholds were tuned on it, and its output is pinned byte for byte):
    1-4 objects of 1-3 classes, diameters uniform in 12%-45% of the short side, placed free (55%), touching a
    neighbour (25%) or overlapping one (20%), large ones first so that occluders are smaller; every instance keeps
    60% of its area visible. The background is low-saturation clutter (faint blobs and lines) without class hues.
``hard`` (data the tuning never saw):
    2-8 objects (mean about 5) of 1-3 classes, so that a class usually has several instances; diameters
    log-uniform in 8%-60% of the short side (an 8x range of scales), painted in random order so that large
    objects also cover small ones; each later object is placed free (25%), touching (40%) or overlapping (35%) an
    earlier one, which is an instance of its own class 80% of the time when there is one: clusters of touching,
    overlapping instances of one class, the case IRNet's displacement field is for. Every instance keeps 50% of
    its area visible. On top of the standard clutter, 2-6 class-like distractors that are background in the
    ground truth, each sharing some of a class's cues but never all: a saturated class hue on a shape no class
    has (bar, crescent, L-shaped elbow), a class shape with its texture but desaturated, or a half-transparent,
    desaturated patch with a class texture. The hue is that of any class, often one the image does not contain,
    so colour alone no longer identifies a class. Distractors may be partly covered by objects or cut by the
    image border. Meant for images of about 128 px and more: below that, the 20 px minimum object size crowds
    the scene and the void band takes a larger share of it.

``clutter`` (like data whose random walk gained little and lost a class):
    2-9 objects (mean about 5) of 1-3 classes, small: diameters log-uniform in 7%-30% of the short side (at the
    demo's sizes many sit at the 20 px minimum); 30 % squashed to 35-55 % of their width (thin triangles, thin
    crosses, flat rings), 30 % of discs, squares and stars with a round hole; placed free (50 %), touching
    (30 %) or overlapping (20 %), half the time next to their own class; 5-10 distractors per image, most of
    them class textures on desaturated patches: class-like textured clutter everywhere.

In every preset every object is at least 20 px across (so the void band does not eat small objects or rings) and
keeps at least 20 non-void pixels; layouts that fail this are redrawn. Objects never touch the image border.

Determinism contract: image ``i`` (0-based position in ``train_aug``) is drawn from its own generator seeded with
``(seed, i)`` for the standard preset and ``(seed, i, *seed_tag)`` for another, so the files are byte-identical
across runs and do not depend on ``workers``, and the two presets draw different scenes from one seed.
:func:`demo_split_ids` computes the split lists without generating anything; the written lists equal it.

CLI: ``python -m irnet_core.tools.demo_generator ROOT --n-images N --n-labelled M --seed S --min-size A --max-size B
[--preset standard|hard|clutter] [--workers W]``.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import multiprocessing
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ..errors import InputError
from ..palette import write_palette_png

DEMO_CLASSES: tuple[str, ...] = ("disc", "square", "triangle", "star", "ring", "cross")

_ID_PREFIX = "2026_"
_MAX_IMAGES = 999_999
_MIN_SIDE = 64  # below this the smallest objects would be mostly void band
_SUPERSAMPLE = 4  # anti-aliased object edges: rasterise at 4x and box-filter down
_JPEG_QUALITY = 90
_MIN_RADIUS = 10.0
_MIN_VISIBLE = 20  # non-void pixels every instance keeps; layouts that fail this are redrawn


@dataclass(frozen=True)
class _Style:
    """How one class looks: outline, texture and the centre of its hue range (0..1)."""

    shape: str
    texture: str
    hue: float


# Hues are spread 60 degrees apart and jittered by at most +-11 degrees, so class colours never overlap.
_STYLES: dict[str, _Style] = {
    "disc": _Style("disc", "dots", 0.0 / 6),  # red
    "star": _Style("star", "solid", 1.0 / 6),  # yellow
    "triangle": _Style("triangle", "stripes", 2.0 / 6),  # green
    "cross": _Style("cross", "speckle", 3.0 / 6),  # cyan
    "square": _Style("square", "checker", 4.0 / 6),  # blue
    "ring": _Style("ring", "gradient", 5.0 / 6),  # magenta
}
_HUE_JITTER = 0.03


@dataclass(frozen=True)
class DemoPreset:
    """What one preset draws. Diameters are fractions of the image's short side; ``p`` tuples are probabilities."""

    n_objects: tuple[int, ...]  # objects per image, drawn with n_objects_p; one that finds no valid place is dropped
    n_objects_p: tuple[float, ...]
    n_classes: tuple[int, ...]  # distinct classes per image; the instances are shared among them
    n_classes_p: tuple[float, ...]
    diameter: tuple[float, float]  # object diameter range, never below 2 * _MIN_RADIUS pixels
    log_uniform: bool  # diameter log-uniform (as many objects per octave of size) rather than uniform
    large_first: bool  # paint large objects first, so that occluders are the smaller ones
    placement_p: tuple[float, float, float]  # free / touching a neighbour / overlapping one, per later object
    same_class_anchor: float  # chance that touch/overlap picks an earlier instance of the same class
    overlap_depth: tuple[float, float]  # centre distance when overlapping, as a fraction of the sum of radii
    min_visible: float  # fraction of its own area that every instance keeps visible
    n_distractors: tuple[int, int]  # class-like background distractors per image (inclusive range)
    distractor_p: tuple[float, float, float]  # hue decoy / shape decoy / texture patch (unread if none are drawn)
    distractor_diameter: tuple[float, float]  # drawn log-uniformly (unread if none are drawn)
    seed_tag: tuple[int, ...]  # appended to (seed, index): each preset draws its own images from a seed
    # Shape variants, drawn only where a chance is above 0 (so the presets without them keep their streams):
    thin_p: float = 0.0  # chance that an object is squashed across its axis to 35-55 % of its width
    hole_p: float = 0.0  # chance that a disc, square or star has a round hole (background shows through)


DEMO_PRESETS: dict[str, DemoPreset] = {
    # The demo the pipeline's thresholds were tuned on; its output must never change (tests pin its digests).
    "standard": DemoPreset(
        n_objects=(1, 2, 3, 4),
        n_objects_p=(0.3, 0.3, 0.25, 0.15),
        n_classes=(1, 2, 3),
        n_classes_p=(0.5, 0.35, 0.15),
        diameter=(0.12, 0.45),
        log_uniform=False,
        large_first=True,
        placement_p=(0.55, 0.25, 0.2),
        same_class_anchor=0.0,
        overlap_depth=(0.55, 0.9),
        min_visible=0.6,
        n_distractors=(0, 0),
        distractor_p=(1.0, 0.0, 0.0),
        distractor_diameter=(0.1, 0.3),
        seed_tag=(),
    ),
    # Data the tuning never saw: crowded clusters of one class, deeper occlusion, 8x range of scales, and
    # background clutter that shares a class's hue or shape or texture, but never all of them.
    "hard": DemoPreset(
        n_objects=(2, 3, 4, 5, 6, 7, 8),
        n_objects_p=(0.08, 0.12, 0.18, 0.2, 0.18, 0.14, 0.1),
        n_classes=(1, 2, 3),
        n_classes_p=(0.35, 0.45, 0.2),
        diameter=(0.08, 0.6),
        log_uniform=True,
        large_first=False,
        placement_p=(0.25, 0.4, 0.35),
        same_class_anchor=0.8,
        overlap_depth=(0.45, 0.85),
        min_visible=0.5,
        n_distractors=(2, 6),
        distractor_p=(0.45, 0.3, 0.25),
        distractor_diameter=(0.08, 0.35),
        seed_tag=(1,),
    ),
    # Like data whose random walk gained little and lost a class (issue 18): many small objects, thin shapes,
    # objects with holes, and class-like textured clutter on every image.
    "clutter": DemoPreset(
        n_objects=(2, 3, 4, 5, 6, 7, 8, 9),
        n_objects_p=(0.08, 0.12, 0.16, 0.18, 0.16, 0.12, 0.1, 0.08),
        n_classes=(1, 2, 3),
        n_classes_p=(0.3, 0.45, 0.25),
        diameter=(0.07, 0.3),
        log_uniform=True,
        large_first=False,
        placement_p=(0.5, 0.3, 0.2),
        same_class_anchor=0.5,
        overlap_depth=(0.55, 0.9),
        min_visible=0.6,
        n_distractors=(5, 10),
        distractor_p=(0.3, 0.25, 0.45),
        distractor_diameter=(0.06, 0.3),
        seed_tag=(2,),
        thin_p=0.3,
        hole_p=0.3,
    ),
}
# Shapes that may get a hole: those whose solid middle leaves a wall of a few pixels around one.
_HOLE_SHAPES = ("disc", "square", "star")

# Shapes no class has, for distractors. "blob" is disc-like, so it only appears desaturated (texture patches).
_DECOY_SHAPES = ("bar", "crescent", "elbow")
_PATCH_SHAPES = ("bar", "crescent", "elbow", "blob")
_TEXTURES = ("solid", "dots", "stripes", "speckle", "checker", "gradient")


# --------------------------------------------------------------------------------------------------- splits


def _image_id(index: int) -> str:
    return f"{_ID_PREFIX}{index + 1:06d}"


def _check_counts(n_images: int, n_labelled: int) -> None:
    if not isinstance(n_images, (int, np.integer)) or not 1 <= n_images <= _MAX_IMAGES:
        raise InputError("n_images", f"must be an integer in 1..{_MAX_IMAGES}, got {n_images!r}")
    if not isinstance(n_labelled, (int, np.integer)) or not 1 <= n_labelled <= n_images:
        raise InputError("n_labelled", f"must be an integer in 1..n_images ({n_images}), got {n_labelled!r}")


def demo_split_ids(n_images: int, n_labelled: int, n_calibration: int = 0, n_val: int = 0) -> dict[str, list[str]]:
    """The split lists of the demo dataset, computed without generating files.

    ``train_aug``: the first ``n_images`` ids ``2026_000001``, ``2026_000002``, ...; ``train``: ``n_labelled`` of
    them, spread evenly over ``train_aug`` (positions ``floor(k * n_images / n_labelled)``), in the same order.
    With ``n_calibration > 0`` also ``calibration``: that many of the other ids of ``train_aug`` (never in
    ``train``, the evaluated list), spread evenly over them. With ``n_val > 0`` also ``val``: the ``n_val`` ids
    after ``train_aug``, disjoint from it. An image's content depends only on its index and the seed, so adding
    val images leaves every other file as it was.
    """
    _check_counts(n_images, n_labelled)
    if not isinstance(n_val, (int, np.integer)) or not 0 <= n_val <= _MAX_IMAGES - n_images:
        raise InputError("n_val", f"must be an integer in 0..{_MAX_IMAGES - n_images}, got {n_val!r}")
    all_ids = [_image_id(i) for i in range(n_images)]
    train = [all_ids[(k * n_images) // n_labelled] for k in range(n_labelled)]
    splits = {"train_aug": all_ids, "train": train}
    if n_calibration:
        taken = set(train)
        rest = [i for i in all_ids if i not in taken]
        if not isinstance(n_calibration, (int, np.integer)) or not 0 < n_calibration <= len(rest):
            raise InputError(
                "n_calibration", f"must be an integer in 0..{len(rest)} (images outside train), got {n_calibration!r}"
            )
        splits["calibration"] = [rest[(k * len(rest)) // n_calibration] for k in range(n_calibration)]
    if n_val:
        splits["val"] = [_image_id(n_images + i) for i in range(n_val)]
    return splits


# ------------------------------------------------------------------------------------------------ geometry


def _regular(n: int, radius: float, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


def _outline(shape: str, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Unit-size outline of ``shape`` as (filled polygons, hole polygons), x/y in [-1, 1], centred at 0."""
    if shape == "disc":
        circle = _regular(96, 1.0)
        circle[:, 1] *= rng.uniform(0.8, 1.0)  # a slightly elliptic disc
        return [circle], []
    if shape == "square":
        half = 1.0 / math.sqrt(2.0)
        aspect = rng.uniform(0.85, 1.0)
        return [
            np.array([[-half, -half * aspect], [half, -half * aspect], [half, half * aspect], [-half, half * aspect]])
        ], []
    if shape == "triangle":
        return [_regular(3, 1.0, -np.pi / 2)], []
    if shape == "star":
        outer = _regular(5, 1.0, -np.pi / 2)
        inner = _regular(5, rng.uniform(0.45, 0.55), -np.pi / 2 + np.pi / 5)
        return [np.stack([outer, inner], axis=1).reshape(10, 2)], []
    if shape == "ring":
        return [_regular(96, 1.0)], [_regular(96, rng.uniform(0.45, 0.58))]
    if shape == "cross":
        a, b = rng.uniform(0.3, 0.38), 0.95  # arm half-width and reach: the arm corners stay inside radius 1
        pts = [
            (a, b),
            (a, a),
            (b, a),
            (b, -a),
            (a, -a),
            (a, -b),
            (-a, -b),
            (-a, -a),
            (-b, -a),
            (-b, a),
            (-a, a),
            (-a, b),
        ]
        return [np.array(pts)], []
    # Distractor shapes (no class has them): each stays inside the unit circle like the class shapes.
    if shape == "bar":
        half_width = rng.uniform(0.16, 0.28)  # aspect 3.5..6: never mistaken for a square
        return [np.array([[-0.97, -half_width], [0.97, -half_width], [0.97, half_width], [-0.97, half_width]])], []
    if shape == "crescent":
        bite = _regular(96, rng.uniform(0.8, 0.9))
        bite[:, 0] += rng.uniform(0.35, 0.5)  # an off-centre bite: thick on one side, pointed tips, no ring
        return [_regular(96, 1.0)], [bite]
    if shape == "elbow":
        t = 2 * rng.uniform(0.15, 0.22)  # arm width; two arms of an L, corners on radius ~0.99
        return [
            np.array([[-0.7, 0.7 - t], [0.7, 0.7 - t], [0.7, 0.7], [-0.7, 0.7]]),
            np.array([[-0.7, -0.7], [-0.7 + t, -0.7], [-0.7 + t, 0.7], [-0.7, 0.7]]),
        ], []
    if shape == "blob":
        angles = 2 * np.pi * np.arange(96) / 96
        r = np.ones(96)
        for k in (2, 3, 4):  # a few smooth harmonics: lumpy, radius 0.5..1
            r += rng.uniform(-0.12, 0.12) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
        r = 0.5 + 0.5 * (r - r.min()) / max(float(np.ptp(r)), 1e-6)
        return [np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)], []
    raise ValueError(f"unknown demo shape {shape!r}")


def _rasterise(
    shape: str, radius: float, angle: float, rng: np.random.Generator, squash: float = 1.0, hole: float = 0.0
) -> np.ndarray:
    """Anti-aliased coverage (float32 0..1) of a rotated shape on a square patch centred on its middle pixel;
    ``squash`` < 1 narrows it across its own x axis, ``hole`` > 0 cuts a round hole of that radius (unit size)."""
    half = math.ceil(radius) + 2
    side = 2 * half + 1
    ss = _SUPERSAMPLE
    canvas = Image.new("L", (side * ss, side * ss), 0)
    draw = ImageDraw.Draw(canvas)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    fills, holes = _outline(shape, rng)
    if hole > 0:
        holes = [*holes, _regular(96, hole)]
    for polys, value in ((fills, 255), (holes, 0)):
        for poly in polys:
            pts = (poly * np.array([1.0, squash]) * radius) @ rot.T + (
                half + 0.5
            )  # pixel (half, half) has its centre at half + 0.5
            draw.polygon([(float(x * ss), float(y * ss)) for x, y in pts], fill=value)
    coverage = canvas.resize((side, side), Image.Resampling.BOX)
    return np.asarray(coverage, dtype=np.float32) / 255.0


def _texture(kind: str, side: int, radius: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Texture intensity ``t`` in [0, 1] on a ``side x side`` patch, in the object's own (rotated) frame."""
    half = side // 2
    y, x = np.mgrid[-half : side - half, -half : side - half].astype(np.float32)
    u = math.cos(angle) * x + math.sin(angle) * y
    v = -math.sin(angle) * x + math.cos(angle) * y
    if kind == "stripes":
        period, phi = rng.uniform(5.0, 8.0), rng.uniform(0, np.pi)
        wave = np.sin(2 * np.pi * (u * math.cos(phi) + v * math.sin(phi)) / period)
        return 0.5 + 0.5 * np.clip(2.5 * wave, -1.0, 1.0)
    if kind == "checker":
        cell = rng.uniform(4.0, 7.0)
        return ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    if kind == "dots":
        spacing = rng.uniform(6.0, 9.0)
        du = (u / spacing) % 1.0 - 0.5
        dv = (v / spacing) % 1.0 - 0.5
        dist = np.sqrt(du * du + dv * dv) * spacing
        return np.clip(0.3 * spacing + 0.5 - dist, 0.0, 1.0)  # discs with a one-pixel soft edge
    if kind == "gradient":
        phi = rng.uniform(0, 2 * np.pi)
        ramp = (u * math.cos(phi) + v * math.sin(phi)) / max(radius, 1.0)
        return np.clip(0.5 + 0.5 * ramp, 0.0, 1.0)
    if kind == "speckle":
        coarse = (rng.random(((side + 1) // 2, (side + 1) // 2)) < 0.4).astype(np.float32)
        return np.kron(coarse, np.ones((2, 2), np.float32))[:side, :side]
    if kind == "solid":
        return rng.uniform(0.0, 0.08, size=(side, side)).astype(np.float32)
    raise ValueError(f"unknown demo texture {kind!r}")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


# ------------------------------------------------------------------------------------------------ rendering


@dataclass
class _Object:
    class_index: int
    radius: float
    coverage: np.ndarray  # float32 (side, side), 0..1
    colour: np.ndarray  # float32 (side, side, 3), 0..255
    cy: int = 0
    cx: int = 0
    area: int = 0  # full (unoccluded) mask area

    @property
    def half(self) -> int:
        return self.coverage.shape[0] // 2

    @property
    def mask(self) -> np.ndarray:
        return self.coverage >= 0.5


def _diameter(bounds: tuple[float, float], log_uniform: bool, rng: np.random.Generator) -> float:
    lo, hi = bounds
    return math.exp(rng.uniform(math.log(lo), math.log(hi))) if log_uniform else rng.uniform(lo, hi)


def _shaded(coverage: np.ndarray, texture: np.ndarray, base: np.ndarray, depth: float) -> np.ndarray:
    """Colour patch: the base colour darkened by the texture (keeps the hue, changes the value) and at the rim."""
    shade = 1.0 - depth * texture
    # A slightly darker rim (about 2 px) gives every object, even over a same-class neighbour, a visible edge.
    inside = ndimage.distance_transform_edt(coverage >= 0.5)
    shade *= 1.0 - 0.25 * np.clip(2.5 - inside, 0.0, 1.0)
    return (base[None, None, :] * shade[:, :, None]).astype(np.float32)


def _make_object(
    class_index: int, style: _Style, short_side: int, preset: DemoPreset, rng: np.random.Generator
) -> _Object:
    # At least 20 px across so that a ring keeps pixels beside its void band.
    radius = max(0.5 * _diameter(preset.diameter, preset.log_uniform, rng) * short_side, _MIN_RADIUS)
    angle = rng.uniform(0, 2 * np.pi)
    squash = rng.uniform(0.35, 0.55) if preset.thin_p > 0 and rng.random() < preset.thin_p else 1.0
    holed = preset.hole_p > 0 and style.shape in _HOLE_SHAPES and rng.random() < preset.hole_p
    coverage = _rasterise(style.shape, radius, angle, rng, squash, rng.uniform(0.25, 0.35) if holed else 0.0)
    side = coverage.shape[0]
    texture = _texture(style.texture, side, radius, angle, rng)
    base = _hsv(style.hue + rng.uniform(-_HUE_JITTER, _HUE_JITTER), rng.uniform(0.55, 0.9), rng.uniform(0.62, 0.95))
    depth = rng.uniform(0.3, 0.5)
    return _Object(class_index, radius, coverage, _shaded(coverage, texture, base, depth))


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Low-saturation clutter: base colour, smooth low-contrast variation, faint blobs and lines (uint8 RGB)."""
    base = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.15), rng.uniform(0.35, 0.75))
    gh, gw = h // 24 + 3, w // 24 + 3
    # Mostly luminance variation plus a little chroma, so the background never takes on a class hue.
    coarse = rng.normal(0, 12, size=(gh, gw, 1)) + rng.normal(0, 3, size=(gh, gw, 3))
    smooth = np.stack(
        [
            np.asarray(
                Image.fromarray(coarse[:, :, c].astype(np.float32), mode="F").resize((w, h), Image.Resampling.BICUBIC)
            )
            for c in range(3)
        ],
        axis=2,
    )
    img = Image.fromarray(np.clip(base + smooth, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(3, 9))):
        rx, ry = rng.uniform(0.05, 0.3) * w, rng.uniform(0.05, 0.3) * h
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        tone = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.2), rng.uniform(0.25, 0.9))
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(*tone.astype(int).tolist(), int(rng.integers(25, 70))))
    for _ in range(int(rng.integers(2, 7))):
        x0, y0, x1, y1 = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h)
        tone = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.2), rng.uniform(0.2, 0.95))
        draw.line(
            [x0, y0, x1, y1],
            fill=(*tone.astype(int).tolist(), int(rng.integers(40, 100))),
            width=int(rng.integers(1, 4)),
        )
    return np.asarray(img)


def _distractors(
    canvas: np.ndarray, inst: np.ndarray, styles: Sequence[_Style], preset: DemoPreset, rng: np.random.Generator
) -> list[str]:
    """Paint class-like clutter into the background ``canvas`` (float32, in place); returns the kinds drawn.

    Each distractor shares some of a class's cues but never all three (shape, texture, saturated class hue), so
    neither colour nor shape alone identifies a class. Objects are painted later, on top: distractors are
    background in the ground truth, and one is only placed where objects leave at least half of it visible.
    """
    h, w = inst.shape
    short = min(h, w)
    kinds = []
    for _ in range(int(rng.integers(preset.n_distractors[0], preset.n_distractors[1], endpoint=True))):
        kind = str(rng.choice(["hue", "shape", "texture"], p=list(preset.distractor_p)))
        radius = max(0.5 * _diameter(preset.distractor_diameter, True, rng) * short, 6.0)
        angle = rng.uniform(0, 2 * np.pi)
        opacity = 1.0
        if kind == "hue":  # a class's saturated hue (any class, often one the image lacks) on a non-class shape
            shape, texture = str(rng.choice(_DECOY_SHAPES)), str(rng.choice(_TEXTURES))
            hue = styles[int(rng.integers(len(styles)))].hue + rng.uniform(-_HUE_JITTER, _HUE_JITTER)
            sat, val = rng.uniform(0.55, 0.9), rng.uniform(0.62, 0.95)
        elif kind == "shape":  # a class's shape and texture, desaturated (grey-ish, any hue)
            style = styles[int(rng.integers(len(styles)))]
            shape, texture = style.shape, style.texture
            hue, sat, val = rng.uniform(0, 1), rng.uniform(0.0, 0.18), rng.uniform(0.35, 0.9)
        else:  # a class texture on a non-class patch, desaturated and half transparent
            # any texture but "solid": the texture is the cue this distractor shares
            shape, texture = str(rng.choice(_PATCH_SHAPES)), str(rng.choice(_TEXTURES[1:]))
            hue, sat, val = rng.uniform(0, 1), rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.9)
            opacity = rng.uniform(0.6, 0.9)
        coverage = _rasterise(shape, radius, angle, rng)
        side = coverage.shape[0]
        pattern = _texture(texture, side, radius, angle, rng)
        colour = _shaded(coverage, pattern, _hsv(hue, sat, val), rng.uniform(0.3, 0.5))
        half = side // 2
        mask = coverage >= 0.5
        for _ in range(10):  # anywhere, even across the image border, but not mostly hidden behind objects
            cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
            y0, x0 = cy - half, cx - half
            ys, xs = slice(max(y0, 0), min(y0 + side, h)), slice(max(x0, 0), min(x0 + side, w))
            py, px = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
            inside = mask[py, px]
            if inside.sum() >= 0.5 * mask.sum() and np.count_nonzero(inst[ys, xs][inside]) <= 0.5 * inside.sum():
                alpha = opacity * coverage[py, px, None]
                canvas[ys, xs] = canvas[ys, xs] * (1.0 - alpha) + colour[py, px] * alpha
                kinds.append(kind)
                break
    return kinds


def _window(obj: _Object, cy: int, cx: int) -> tuple[slice, slice]:
    return slice(cy - obj.half, cy + obj.half + 1), slice(cx - obj.half, cx + obj.half + 1)


def _fits(obj: _Object, cy: int, cx: int, h: int, w: int) -> bool:
    return obj.half + 1 <= cy <= h - obj.half - 2 and obj.half + 1 <= cx <= w - obj.half - 2


def _try_place(
    obj: _Object, cy: int, cx: int, inst: np.ndarray, placed: list[_Object], allow_overlap: bool, min_visible: float
) -> bool:
    """Whether ``obj`` drawn on top at (cy, cx) keeps the layout valid: inside the image, and either no overlap
    or every earlier object still shows ``min_visible`` of its area (so each stays a recognisable instance)."""
    h, w = inst.shape
    if not _fits(obj, cy, cx, h, w):
        return False
    rows, cols = _window(obj, cy, cx)
    under = inst[rows, cols][obj.mask]
    if not under.any():
        return True
    if not allow_overlap:
        return False
    hidden = np.bincount(under, minlength=len(placed) + 1)
    for k, other in enumerate(placed, start=1):
        visible = int(np.count_nonzero(inst == k)) - int(hidden[k])
        if visible < min_visible * other.area:
            return False
    return True


def _place(obj: _Object, inst: np.ndarray, placed: list[_Object], preset: DemoPreset, rng: np.random.Generator) -> bool:
    """Find a position for ``obj`` (free, touching a neighbour, or overlapping one) and paint its id."""
    h, w = inst.shape
    mode = "free" if not placed else str(rng.choice(["free", "touch", "overlap"], p=list(preset.placement_p)))
    anchors = placed
    # Only presets that cluster a class draw here, so the standard preset's random stream stays as it was.
    if preset.same_class_anchor > 0 and mode != "free":
        same = [other for other in placed if other.class_index == obj.class_index]
        if same and rng.random() < preset.same_class_anchor:
            anchors = same
    for _ in range(40):
        if mode == "free":
            cy = int(rng.integers(obj.half + 1, max(obj.half + 2, h - obj.half - 1)))
            cx = int(rng.integers(obj.half + 1, max(obj.half + 2, w - obj.half - 1)))
            ok = _try_place(obj, cy, cx, inst, placed, False, preset.min_visible)
        else:
            anchor = anchors[int(rng.integers(len(anchors)))]
            angle = rng.uniform(0, 2 * np.pi)
            dy, dx = math.sin(angle), math.cos(angle)
            reach = anchor.radius + obj.radius
            ok = False
            if mode == "overlap":
                dist = rng.uniform(*preset.overlap_depth) * reach
                cy, cx = round(anchor.cy + dy * dist), round(anchor.cx + dx * dist)
                ok = _try_place(obj, cy, cx, inst, placed, True, preset.min_visible)
            else:  # slide outwards from the anchor until the first free position: the objects touch
                dist = 0.6 * reach
                while dist < 2.0 * reach and not ok:
                    cy, cx = round(anchor.cy + dy * dist), round(anchor.cx + dx * dist)
                    if not _fits(obj, cy, cx, h, w):
                        break
                    ok = _try_place(obj, cy, cx, inst, placed, False, preset.min_visible)
                    dist += 1.0
        if ok:
            obj.cy, obj.cx = cy, cx
            rows, cols = _window(obj, cy, cx)
            mask = obj.mask
            obj.area = int(np.count_nonzero(mask))
            inst[rows, cols][mask] = len(placed) + 1
            placed.append(obj)
            return True
    return False


@dataclass
class _Sample:
    image: np.ndarray  # uint8 (H, W, 3)
    class_map: np.ndarray  # uint8 (H, W): 0, c+1, 255
    object_map: np.ndarray  # uint8 (H, W): 0, 1..M, 255
    objects: list[tuple[int, tuple[int, int, int, int]]]  # (class index, (xmin, ymin, xmax, ymax) 1-based)
    visible: list[float]  # per instance: share of its full mask not covered by later instances (before the band)
    decoys: list[str]  # the distractors drawn into the background, by kind


def _render(
    index: int,
    seed: int,
    min_size: int,
    max_size: int,
    styles: Sequence[_Style],
    preset: DemoPreset = DEMO_PRESETS["standard"],
) -> _Sample:
    """Draw image ``index`` from its own generator seeded with ``(seed, index, *preset.seed_tag)``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, *preset.seed_tag]))
    h = int(rng.integers(min_size, max_size, endpoint=True))
    w = int(rng.integers(min_size, max_size, endpoint=True))
    short = min(h, w)
    n_objects = int(rng.choice(list(preset.n_objects), p=list(preset.n_objects_p)))
    # Several instances of one class are common: draw a few distinct classes and share the objects among them.
    n_kinds = min(n_objects, len(styles), int(rng.choice(list(preset.n_classes), p=list(preset.n_classes_p))))
    kinds = rng.choice(len(styles), size=n_kinds, replace=False)
    assignment = list(kinds) + list(rng.choice(kinds, size=n_objects - n_kinds))
    for _ in range(50):  # redraw the layout in the (rare) case an instance would be all void band
        objects = [_make_object(int(c), styles[int(c)], short, preset, rng) for c in assignment]
        if preset.large_first:
            objects.sort(key=lambda o: -o.radius)  # large first: smaller objects in front keep occlusions partial
        inst = np.zeros((h, w), dtype=np.uint8)
        placed: list[_Object] = []
        for obj in objects:
            _place(obj, inst, placed, preset, rng)  # the first object always fits; a later one may be dropped
        # VOC marks a void band along object outlines: here every pixel whose 3x3 neighbourhood spans two
        # different regions, i.e. about one pixel on each side of each boundary.
        band = ndimage.maximum_filter(inst, size=3) != ndimage.minimum_filter(inst, size=3)
        kept = np.bincount(inst[~band], minlength=len(placed) + 1)[1:]
        if placed and kept.min() >= _MIN_VISIBLE:
            break
    else:
        raise RuntimeError(f"demo image {index}: no valid layout for {min_size}..{max_size} px images")

    canvas = _background(h, w, rng).astype(np.float32)
    decoys = _distractors(canvas, inst, styles, preset, rng) if preset.n_distractors[1] > 0 else []
    for obj in placed:
        rows, cols = _window(obj, obj.cy, obj.cx)
        alpha = obj.coverage[:, :, None]
        canvas[rows, cols] = canvas[rows, cols] * (1.0 - alpha) + obj.colour * alpha
    canvas += rng.normal(0.0, 3.0, size=canvas.shape)  # sensor noise, objects included
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)

    class_of = np.zeros(256, dtype=np.uint8)
    boxes = []
    for k, obj in enumerate(placed, start=1):
        class_of[k] = obj.class_index + 1
        ys, xs = np.nonzero(inst == k)
        boxes.append((obj.class_index, (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)))
    class_map = class_of[inst]
    object_map = inst.copy()
    class_map[band] = 255
    object_map[band] = 255
    visible = [float(np.count_nonzero(inst == k)) / obj.area for k, obj in enumerate(placed, start=1)]
    return _Sample(image, class_map, object_map, boxes, visible, decoys)


# ------------------------------------------------------------------------------------------------- writing


def _annotation_xml(image_id: str, sample: _Sample, classes: Sequence[str]) -> bytes:
    h, w = sample.class_map.shape
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "IRNetDemo"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "IRNet synthetic demo"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(w)
    ET.SubElement(size, "height").text = str(h)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "1"
    for class_index, (xmin, ymin, xmax, ymax) in sample.objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = classes[class_index]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", xmin), ("ymin", ymin), ("xmax", xmax), ("ymax", ymax)):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8") + b"\n"


def _write_images(
    root: str, indices: Sequence[int], seed: int, min_size: int, max_size: int, classes: tuple[str, ...], preset: str
) -> None:
    """Render and write the files of the images at ``indices`` (one process of the pool runs this)."""
    base = Path(root)
    styles = [_STYLES[name] for name in classes]
    for index in indices:
        image_id = _image_id(index)
        sample = _render(index, seed, min_size, max_size, styles, DEMO_PRESETS[preset])
        Image.fromarray(sample.image).save(base / "JPEGImages" / f"{image_id}.jpg", "JPEG", quality=_JPEG_QUALITY)
        write_palette_png(base / "SegmentationClass" / f"{image_id}.png", sample.class_map)
        write_palette_png(base / "SegmentationObject" / f"{image_id}.png", sample.object_map)
        (base / "Annotations" / f"{image_id}.xml").write_bytes(_annotation_xml(image_id, sample, classes))


def _check_params(seed: int, min_size: int, max_size: int, classes: Sequence[str], workers: int, preset: str) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", f"must be a non-negative integer, got {seed!r}")
    if not isinstance(min_size, (int, np.integer)) or min_size < _MIN_SIDE:
        raise InputError("min_size", f"must be an integer >= {_MIN_SIDE}, got {min_size!r}")
    if not isinstance(max_size, (int, np.integer)) or max_size < min_size or max_size > 4096:
        raise InputError("max_size", f"must be an integer in min_size ({min_size})..4096, got {max_size!r}")
    if not classes or len(set(classes)) != len(classes):
        raise InputError("classes", f"must be a non-empty list of distinct names, got {list(classes)!r}")
    unknown = [c for c in classes if c not in _STYLES]
    if unknown:
        raise InputError("classes", f"unknown demo class {unknown[0]!r} (known: {', '.join(DEMO_CLASSES)})")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InputError("workers", f"must be a positive integer, got {workers!r}")
    if not isinstance(preset, str) or preset not in DEMO_PRESETS:
        raise InputError("preset", f"must be one of {', '.join(DEMO_PRESETS)}, got {preset!r}")


def generate_demo_dataset(
    root: str | Path,
    *,
    n_images: int,
    n_labelled: int,
    seed: int,
    min_size: int,
    max_size: int,
    classes: Sequence[str] = DEMO_CLASSES,
    workers: int = 1,
    preset: str = "standard",
    n_calibration: int = 0,
    n_val: int = 0,
) -> None:
    """Write the demo dataset under ``root`` in the VOC 2012 layout (see the module docstring).

    Image sides are drawn uniformly in ``[min_size, max_size]``. ``classes`` must be distinct names from
    :data:`DEMO_CLASSES` (a subset keeps each class's look); class indices follow the order given. Existing
    files with the same names are overwritten, others are left alone. ``workers > 1`` renders in a pool of
    spawned processes; the output is identical to ``workers=1``. ``preset`` names an entry of
    :data:`DEMO_PRESETS`: ``"standard"`` (the tuned demo) or ``"hard"`` (crowded, occluded, cluttered scenes).
    ``n_val`` more images form the ``val`` list (held out from every pseudo-label stage).
    """
    classes = tuple(classes)
    _check_counts(n_images, n_labelled)
    _check_params(seed, min_size, max_size, classes, workers, preset)
    splits = demo_split_ids(n_images, n_labelled, n_calibration, n_val)
    n_total = n_images + len(splits.get("val", []))
    base = Path(root)
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)

    args = (str(base), int(seed), int(min_size), int(max_size), classes, preset)
    if workers == 1 or n_total == 1:
        _write_images(args[0], range(n_total), *args[1:])
    else:
        # Spawned (not forked) workers: safe even when the caller has threads (e.g. torch) running.
        n_chunks = min(n_total, workers * 4)
        chunks = [list(range(k, n_total, n_chunks)) for k in range(n_chunks)]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_write_images, args[0], chunk, *args[1:]) for chunk in chunks]
            for future in futures:
                future.result()

    # Lists last: their presence means every image they name has been written.
    for split, ids in splits.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


# ----------------------------------------------------------------------------------------------------- CLI


def _generate_in_format(args) -> None:
    """The demo in the COCO or folder layout: generated in VOC layout beside it, then converted without loss."""
    import tempfile

    # Lazy: the converters, and the COCO format behind them, serve only the COCO and folder layouts.
    from ..data.convert import convert_dataset

    args.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.root) as staging:
        generate_demo_dataset(
            staging, n_images=args.n_images, n_labelled=args.n_labelled, seed=args.seed, min_size=args.min_size,
            max_size=args.max_size, workers=args.workers, preset=args.preset, n_calibration=args.n_calibration,
            n_val=args.n_val,
        )  # fmt: skip
        lists = demo_split_ids(args.n_images, args.n_labelled, args.n_calibration, args.n_val)
        convert_dataset(staging, args.root, args.format, lists, classes=DEMO_CLASSES)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints an :class:`InputError` as one line and returns 2."""
    parser = argparse.ArgumentParser(
        prog="python -m irnet_core.tools.demo_generator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("root", type=Path, help="output folder")
    parser.add_argument("--n-images", type=int, required=True, help="number of images (train_aug)")
    parser.add_argument("--n-labelled", type=int, required=True, help="size of the 'train' subset")
    parser.add_argument("--n-calibration", type=int, default=0, help="images outside 'train' listed in 'calibration'")
    parser.add_argument("--n-val", type=int, default=0, help="images of the held-out 'val' list")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--min-size", type=int, required=True, help="smallest image side in pixels")
    parser.add_argument("--max-size", type=int, required=True, help="largest image side in pixels")
    parser.add_argument("--workers", type=int, default=1, help="processes (output does not depend on it)")
    parser.add_argument("--preset", default="standard", help=f"scene design, one of: {', '.join(DEMO_PRESETS)}")
    parser.add_argument(
        "--format",
        default="voc",
        choices=["voc", "coco", "folder"],
        help="dataset layout: VOC 2012, COCO 2014 (lists/*.txt name the splits' ids) or folder + labels.csv",
    )
    args = parser.parse_args(argv)
    try:
        if args.format != "voc":
            _generate_in_format(args)
            return 0
        generate_demo_dataset(
            args.root,
            n_images=args.n_images,
            n_labelled=args.n_labelled,
            seed=args.seed,
            min_size=args.min_size,
            max_size=args.max_size,
            workers=args.workers,
            preset=args.preset,
            n_calibration=args.n_calibration,
            n_val=args.n_val,
        )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
