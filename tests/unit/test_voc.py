"""Reading the PASCAL VOC 2012 layout: id lists, robust image decoding, labels, semantic and instance GT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irnet_core.data import voc
from irnet_core.errors import InputError
from irnet_core.palette import write_palette_png

# ----------------------------------------------------------------------------------------------- id lists


def test_voc_classes():
    assert len(voc.VOC_CLASSES) == 20
    assert voc.VOC_CLASSES[0] == "aeroplane" and voc.VOC_CLASSES[14] == "person" and voc.VOC_CLASSES[-1] == "tvmonitor"
    assert voc.VOC_CLASSES.index("dog") == 11  # matches the §1.3 example: dog -> key 11


def test_read_id_list_keeps_strings_and_skips_blank_lines(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("2007_000032\n\n  2008_000123  \n000042\r\n1e5\n")
    assert voc.read_id_list(path) == ["2007_000032", "2008_000123", "000042", "1e5"]


@pytest.mark.parametrize("bad", ["../x", "a b", "x/y", ".."])
def test_read_id_list_rejects_unsafe_ids_with_line_number(tmp_path, bad):
    path = tmp_path / "list.txt"
    path.write_text(f"2007_000032\n{bad}\n")
    with pytest.raises(InputError) as err:
        voc.read_id_list(path)
    assert err.value.where == f"{path}:2"
    assert repr(bad) in str(err.value)


def test_read_id_list_rejects_duplicates_and_missing_file(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text("a\nb\na\n")
    with pytest.raises(InputError, match=r"dup\.txt:3: duplicate image id 'a' \(first on line 1\)"):
        voc.read_id_list(path)
    with pytest.raises(InputError, match="nope.txt: split file does not exist"):
        voc.read_id_list(tmp_path / "nope.txt")


def test_image_path_falls_back_to_other_suffixes(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    assert voc.image_path(tmp_path, "a") == tmp_path / "JPEGImages" / "a.jpg"  # none exists: names the .jpg
    Image.new("RGB", (4, 3)).save(tmp_path / "JPEGImages" / "a.png")
    assert voc.image_path(tmp_path, "a") == tmp_path / "JPEGImages" / "a.png"
    Image.new("RGB", (4, 3)).save(tmp_path / "JPEGImages" / "a.jpg")
    assert voc.image_path(tmp_path, "a") == tmp_path / "JPEGImages" / "a.jpg"
    with pytest.raises(InputError):
        voc.image_path(tmp_path, "../a")


# ------------------------------------------------------------------------------------------------- images


def _check_rgb(arr: np.ndarray, shape: tuple[int, int]) -> None:
    assert arr.dtype == np.uint8 and arr.shape == shape + (3,) and arr.flags.c_contiguous


def test_load_image_converts_grayscale_rgba_la_palette_and_bilevel(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = voc.load_image(tmp_path / "g.png")
    _check_rgb(out, (3, 4))
    assert (out == gray[:, :, None]).all()

    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0  # fully transparent: colour kept
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = voc.load_image(tmp_path / "a.png")
    _check_rgb(out, (3, 4))
    assert out[0, 0].tolist() == [10, 20, 30]

    la = np.stack([gray, np.full_like(gray, 128)], axis=2)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert (voc.load_image(tmp_path / "la.png") == gray[:, :, None]).all()

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.info["transparency"] = 0  # palette transparency must not make PIL warn (warnings are errors here)
    pal.save(tmp_path / "p.png", transparency=0)
    out = voc.load_image(tmp_path / "p.png")
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [0, 0, 255]

    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(tmp_path / "b.png")
    assert voc.load_image(tmp_path / "b.png").tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_load_image_converts_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)  # pure red in CMYK
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
    out = voc.load_image(tmp_path / "c.jpg")
    _check_rgb(out, (6, 8))
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 240 and g < 15 and b < 15


def test_load_image_rescales_16_bit(tmp_path):
    values = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "s.png")
    with Image.open(tmp_path / "s.png") as im:
        assert im.mode.startswith("I")
    out = voc.load_image(tmp_path / "s.png")
    assert out[..., 0].tolist() == [[0, 100], [255, 200]]
    assert (out[..., 0] == out[..., 2]).all()


def test_load_image_and_size_of_a_normal_jpeg(tmp_path):
    img = np.zeros((30, 50, 3), np.uint8)
    img[:, 25:] = (200, 100, 50)
    Image.fromarray(img).save(tmp_path / "x.jpg", quality=95)
    out = voc.load_image(tmp_path / "x.jpg")
    _check_rgb(out, (30, 50))
    assert np.abs(out[5, 40].astype(int) - [200, 100, 50]).max() < 6
    assert voc.image_size(tmp_path / "x.jpg") == (30, 50)


def _jpeg_bytes(tmp_path: Path) -> bytes:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "src.jpg", quality=90)
    return (tmp_path / "src.jpg").read_bytes()


@pytest.mark.parametrize("kind", ["missing", "empty", "garbage", "truncated"])
def test_bad_images_raise_input_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"bad_{kind}.jpg"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"this is not an image" * 10)
    elif kind == "truncated":
        data = _jpeg_bytes(tmp_path)
        path.write_bytes(data[: len(data) // 2])  # the header is intact; only a full decode notices
    with pytest.raises(InputError) as err:
        voc.load_image(path)
    assert err.value.where == str(path)
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)
    if kind != "truncated":
        with pytest.raises(InputError, match="bad_"):
            voc.image_size(path)


def test_image_size_reads_only_the_header_of_a_truncated_file(tmp_path):
    data = _jpeg_bytes(tmp_path)
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    assert voc.image_size(tmp_path / "t.jpg") == (64, 64)


# ------------------------------------------------------------------------------------------------- labels


def _xml(names: list[str]) -> str:
    objects = "".join(f"<object><name>{n}</name><bndbox><xmin>1</xmin></bndbox></object>" for n in names)
    return f"<annotation><filename>x.jpg</filename>{objects}</annotation>"


def _write_xml(root: Path, image_id: str, names: list[str]) -> Path:
    path = root / "Annotations" / f"{image_id}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_xml(names))
    return path


def test_labels_from_xml_sorted_unique(tmp_path):
    _write_xml(tmp_path, "i1", ["person", "dog", "person", " aeroplane "])
    assert voc.load_image_labels(tmp_path, "i1", voc.VOC_CLASSES) == [0, 11, 14]


def test_unknown_class_name_in_xml(tmp_path):
    path = _write_xml(tmp_path, "i1", ["dog", "unicorn"])
    with pytest.raises(InputError) as err:
        voc.load_image_labels(tmp_path, "i1", voc.VOC_CLASSES)
    assert err.value.where == str(path) and "'unicorn'" in str(err.value)


def test_broken_xml(tmp_path):
    path = tmp_path / "Annotations" / "i1.xml"
    path.parent.mkdir()
    path.write_text("<annotation><object>")
    with pytest.raises(InputError, match="i1.xml: cannot parse"):
        voc.load_image_labels(tmp_path, "i1", voc.VOC_CLASSES)


def test_labels_from_segmentation_class_when_xml_absent(tmp_path):
    label = np.zeros((6, 6), np.uint8)
    label[1:3, 1:3] = 15
    label[4:, 4:] = 3
    label[0, :] = 255
    write_palette_png(tmp_path / "SegmentationClass" / "i2.png", label)
    assert voc.load_image_labels(tmp_path, "i2", voc.VOC_CLASSES) == [2, 14]
    label[5, 0] = 21  # one past the 20 classes
    write_palette_png(tmp_path / "SegmentationClass" / "i2.png", label)
    with pytest.raises(InputError, match=r"i2\.png: label value 21 is out of range"):
        voc.load_image_labels(tmp_path, "i2", voc.VOC_CLASSES)


def test_labels_need_some_annotation(tmp_path):
    with pytest.raises(InputError, match="no annotation for image 'i3'"):
        voc.load_image_labels(tmp_path, "i3", voc.VOC_CLASSES)
    with pytest.raises(InputError):
        voc.load_image_labels(tmp_path, "../i3", voc.VOC_CLASSES)


# -------------------------------------------------------------------------------------------- ground truth


def _instance_scene(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Two dogs (12) and one person (15), a 255 band around each, written as VOC palette PNGs."""
    cls = np.zeros((20, 24), np.uint8)
    obj = np.zeros((20, 24), np.uint8)
    cls[2:8, 2:8], obj[2:8, 2:8] = 12, 1
    cls[2:8, 12:20], obj[2:8, 12:20] = 12, 2
    cls[11:18, 5:15], obj[11:18, 5:15] = 15, 3
    for r0, r1, c0, c1 in ((2, 8, 2, 8), (2, 8, 12, 20), (11, 18, 5, 15)):
        for m in (cls, obj):
            m[r0 - 1, c0 - 1 : c1 + 1] = m[r1, c0 - 1 : c1 + 1] = 255
            m[r0 - 1 : r1 + 1, c0 - 1] = m[r0 - 1 : r1 + 1, c1] = 255
    write_palette_png(root / "SegmentationClass" / "s.png", cls)
    write_palette_png(root / "SegmentationObject" / "s.png", obj)
    return cls, obj


def test_load_class_gt_reads_palette_indices(tmp_path):
    cls, _ = _instance_scene(tmp_path)
    out = voc.load_class_gt(tmp_path, "s")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, cls)
    with pytest.raises(InputError, match="missing.png: label PNG does not exist"):
        voc.load_class_gt(tmp_path, "missing")


def test_load_class_gt_rejects_rgb_png(tmp_path):
    path = tmp_path / "SegmentationClass" / "rgb.png"
    path.parent.mkdir()
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(InputError) as err:
        voc.load_class_gt(tmp_path, "rgb")
    assert err.value.where == str(path) and "mode RGB" in str(err.value)


def test_instance_gt_round_trip(tmp_path):
    _cls, obj = _instance_scene(tmp_path)
    masks, labels = voc.load_instance_gt(tmp_path, "s")
    assert masks.dtype == bool and masks.shape == (3, 20, 24)
    assert labels.dtype == np.int64 and labels.tolist() == [11, 11, 14]
    for k in range(3):
        np.testing.assert_array_equal(masks[k], obj == k + 1)
    assert not masks.any(axis=0)[obj == 255].any()  # void is never part of an instance


def test_instance_class_is_the_majority_and_bad_instances_raise(tmp_path):
    cls, _obj = _instance_scene(tmp_path)
    cls[2, 2:4] = 7  # a few stray pixels of another class inside instance 1
    write_palette_png(tmp_path / "SegmentationClass" / "s.png", cls)
    assert voc.load_instance_gt(tmp_path, "s")[1].tolist() == [11, 11, 14]
    cls[11:18, 5:15] = 0  # instance 3 now lies on background
    write_palette_png(tmp_path / "SegmentationClass" / "s.png", cls)
    with pytest.raises(InputError, match="instance 3 of s.png is mostly background"):
        voc.load_instance_gt(tmp_path, "s")
    write_palette_png(tmp_path / "SegmentationClass" / "s.png", cls[:10])
    with pytest.raises(InputError, match="differs from"):
        voc.load_instance_gt(tmp_path, "s")


def test_instance_gt_without_instances(tmp_path):
    empty = np.zeros((5, 7), np.uint8)
    write_palette_png(tmp_path / "SegmentationClass" / "e.png", empty)
    write_palette_png(tmp_path / "SegmentationObject" / "e.png", empty)
    masks, labels = voc.load_instance_gt(tmp_path, "e")
    assert masks.shape == (0, 5, 7) and labels.shape == (0,) and labels.dtype == np.int64
