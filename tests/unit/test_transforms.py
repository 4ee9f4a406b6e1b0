"""Preprocessing primitives (method doc §2.1, §2.9 step 3)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from irnet_core import transforms as T


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _coord_label(h: int, w: int) -> np.ndarray:
    """A label whose value encodes its position, so crops/flips can be checked pixel by pixel."""
    return ((np.arange(h)[:, None] * 7 + np.arange(w)[None, :] * 3) % 250).astype(np.uint8)


def test_normalize_uses_imagenet_statistics():
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0] = 255
    img[1, 2] = (124, 116, 104)
    out = T.normalize(img)
    assert out.dtype == np.float32 and out.shape == (2, 3, 3)
    mean, std = np.array(T.IMAGENET_MEAN), np.array(T.IMAGENET_STD)
    np.testing.assert_allclose(out[0, 0], (1 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(out[0, 1], -mean / std, rtol=1e-6)
    np.testing.assert_allclose(out[1, 2], (np.array([124, 116, 104]) / 255 - mean) / std, atol=1e-6)
    assert T.IMAGENET_MEAN == (0.485, 0.456, 0.406) and T.IMAGENET_STD == (0.229, 0.224, 0.225)


def test_to_chw():
    img = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    chw = T.to_chw(img)
    assert chw.shape == (4, 2, 3) and chw.flags.c_contiguous
    assert chw[3, 1, 2] == img[1, 2, 3]


def test_scaled_size_rounds_like_numpy():
    assert T.scaled_size((375, 500), 0.5) == (188, 250)
    assert T.scaled_size((5, 7), 0.5) == (int(np.round(2.5)), int(np.round(3.5))) == (2, 4)
    assert T.scaled_size((375, 500), 1.5) == (562, 750)  # 562.5 -> 562 (ties to even)
    assert T.scaled_size((3, 3), 0.01) == (1, 1)


def test_resize_image_is_pil_bicubic_and_label_is_nearest():
    img = _image(20, 30)
    out = T.resize_image(img, (13, 17))
    expected = np.asarray(Image.fromarray(img).resize((17, 13), Image.Resampling.BICUBIC))
    assert out.shape == (13, 17, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    label = np.zeros((20, 30), np.uint8)
    label[5:15, 10:20] = 3
    label[:4, :] = 255
    small = T.resize_label(label, (10, 15))
    assert small.shape == (10, 15)
    assert set(np.unique(small)) == {0, 3, 255}  # nearest never invents values
    np.testing.assert_array_equal(small, np.asarray(Image.fromarray(label).resize((15, 10), Image.Resampling.NEAREST)))


def test_resize_rejects_wrong_dtype():
    with pytest.raises(ValueError):
        T.resize_image(np.zeros((4, 4, 3), np.float32), (2, 2))
    with pytest.raises(ValueError):
        T.resize_label(np.zeros((4, 4), np.int32), (2, 2))


@pytest.mark.parametrize("h,w", [(512, 512), (37, 61), (100, 130), (13, 9), (375, 500)])
def test_downsample_label_nearest_matches_pillow(h, w):
    label = np.random.default_rng(h * w).integers(0, 256, size=(h, w), dtype=np.uint8)
    ours = T.downsample_label_nearest(label, 4)
    oh, ow = T.scaled_size((h, w), 0.25)
    pil = np.asarray(Image.fromarray(label).resize((ow, oh), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(ours, pil)


def test_downsample_label_samples_pixel_4i_plus_2():
    label = _coord_label(512, 512)
    out = T.downsample_label_nearest(label)
    assert out.shape == (128, 128)
    np.testing.assert_array_equal(out, label[2::4, 2::4])


def test_random_resize_long_hits_the_drawn_long_side():
    img = _image(60, 40)
    longs = set()
    for seed in range(30):
        out = T.random_resize_long(img, 30, 34, np.random.default_rng(seed))
        assert max(out.shape[:2]) in range(30, 35)
        assert out.shape[1] == round(40 * max(out.shape[:2]) / 60)  # aspect kept
        longs.add(max(out.shape[:2]))
    assert longs == {30, 31, 32, 33, 34}  # both ends inclusive
    a = T.random_resize_long(img, 30, 90, np.random.default_rng(5))
    b = T.random_resize_long(img, 30, 90, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_random_scale_applies_one_scale_to_both():
    img, label = _image(40, 50), _coord_label(40, 50)
    for seed in range(10):
        s = np.random.default_rng(seed).uniform(0.5, 1.5)
        out, out_label = T.random_scale(img, label, 0.5, 1.5, np.random.default_rng(seed))
        assert out.shape[:2] == out_label.shape == T.scaled_size((40, 50), s)
        assert set(np.unique(out_label)) <= set(np.unique(label))
    out, none = T.random_scale(img, None, 2.0, 2.0 + 1e-9, np.random.default_rng(0))
    assert none is None and out.shape == (80, 100, 3)


def test_random_hflip_flips_image_and_label_together():
    img, label = _image(5, 6), _coord_label(5, 6)
    flipped = 0
    for seed in range(40):
        out, out_label = T.random_hflip(img, label, np.random.default_rng(seed))
        if np.array_equal(out, img[:, ::-1]):
            flipped += 1
            np.testing.assert_array_equal(out_label, label[:, ::-1])
        else:
            np.testing.assert_array_equal(out, img)
            np.testing.assert_array_equal(out_label, label)
    assert 10 < flipped < 30


def test_random_crop_takes_a_window_of_a_larger_image():
    img, label = _image(30, 40), _coord_label(30, 40)
    seen = set()
    for seed in range(30):
        out, out_label = T.random_crop(img, label, 16, np.random.default_rng(seed))
        assert out.shape == (16, 16, 3) and out_label.shape == (16, 16)
        # locate the window in the (random, hence unambiguous) image; the label must come from the same box
        match = [(y, x) for y in range(15) for x in range(25) if np.array_equal(img[y : y + 16, x : x + 16], out)]
        assert len(match) == 1
        y, x = match[0]
        np.testing.assert_array_equal(out_label, label[y : y + 16, x : x + 16])
        seen.add(match[0])
    assert len(seen) > 5  # the window is random


def test_random_crop_places_a_smaller_image_inside_the_container():
    img = _image(10, 12).astype(np.float32)
    label = _coord_label(10, 12)
    offsets = set()
    for seed in range(30):
        out, out_label = T.random_crop(img, label, 16, np.random.default_rng(seed), img_fill=-1.0)
        ys, xs = np.nonzero(out_label != 255)
        y, x = ys.min(), xs.min()
        assert out_label[y : y + 10, x : x + 12].tolist() == label.tolist()
        np.testing.assert_array_equal(out[y : y + 10, x : x + 12], img)
        assert (out == -1.0).sum() == (16 * 16 - 120) * 3 and (out_label == 255).sum() == 16 * 16 - 120
        assert 0 <= y <= 6 and 0 <= x <= 4
        offsets.add((int(y), int(x)))
    assert len(offsets) > 5


def test_random_crop_mixed_axes_and_no_label():
    img = _image(40, 8)
    out, none = T.random_crop(img, None, (16, 16), np.random.default_rng(3))
    assert none is None and out.shape == (16, 16, 3)
    cols = np.nonzero(out.any(axis=(0, 2)))[0]
    assert len(cols) <= 8 and (out[:, cols.min() : cols.min() + 8] != 0).any()
    # rows: a full window of the taller image, so every row has image content
    x = int(np.nonzero((out != 0).any(axis=(0, 2)))[0].min())
    window = out[:, x : x + 8]
    assert any(np.array_equal(window, img[y : y + 16]) for y in range(25))


def test_top_left_crop():
    img = _image(10, 30)
    out = T.top_left_crop(img, 16)
    assert out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[:10], img[:, :16])
    assert (out[10:] == 0).all()
    label = _coord_label(20, 5)
    out_label = T.top_left_crop(label, (8, 8), fill=255)
    np.testing.assert_array_equal(out_label[:, :5], label[:8])
    assert (out_label[:, 5:] == 255).all()
