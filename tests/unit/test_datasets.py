"""The dataset formats behind one interface: VOC, COCO 2014 and folder + CSV; image rules; conversions."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irnet_core.data import coco as coco_module
from irnet_core.data import images, voc
from irnet_core.data.convert import (
    coco_like_category_ids,
    rectangle_polygons,
    uncompressed_rle,
    voc_to_coco,
    voc_to_folder,
)
from irnet_core.data.dataset import open_dataset, read_lists
from irnet_core.data.folder import folder_image_id
from irnet_core.errors import InputError
from irnet_core.palette import voc_palette, write_palette_png
from irnet_core.store import check_image_id
from irnet_core.tools.demo_generator import DEMO_CLASSES, demo_split_ids, generate_demo_dataset


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------- image rules


def test_voc_module_reexports_the_shared_readers():
    assert voc.load_image is images.load_image and voc.image_size is images.image_size
    from irnet_core.data import id_lists

    assert voc.read_id_list is id_lists.read_id_list


@pytest.mark.parametrize("side", [11, 15])  # 121 px: Pillow would only warn; 225 px: Pillow would raise
def test_images_over_the_pixel_limit_are_one_input_error(tmp_path, side):
    Image.new("RGB", (side, side)).save(tmp_path / "big.png")
    write_palette_png(tmp_path / "big_label.png", np.zeros((side, side), np.uint8))
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    for read in (images.load_image, images.image_size):
        with pytest.raises(InputError) as err:
            read(tmp_path / "big.png", max_pixels=100)
        message = _one_line(err)
        assert err.value.where == str(tmp_path / "big.png")
        assert f"{side}x{side} = {side * side:,} pixels, over dataset.max_image_pixels (100)" in message
        assert message.count(str(tmp_path)) == 1
    with pytest.raises(InputError, match="big_label.png: label PNG has 1.x1. = ... pixels"):
        images.load_label_png(tmp_path / "big_label.png", max_pixels=100)
    assert images.load_image(tmp_path / "ok.png", max_pixels=100).shape == (10, 10, 3)


def test_the_default_limit_is_pillows_and_a_raised_limit_really_admits(tmp_path, monkeypatch):
    assert images.DEFAULT_MAX_PIXELS == 89_478_485  # Pillow 10-13's decompression-bomb limit
    Image.new("RGB", (15, 15)).save(tmp_path / "big.png")
    # Pillow alone would refuse 225 px under a limit of 100 (over twice its limit): ours decides.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert images.load_image(tmp_path / "big.png", max_pixels=225).shape == (15, 15, 3)
    assert images.image_size(tmp_path / "big.png", max_pixels=None) == (15, 15)
    assert Image.MAX_IMAGE_PIXELS == 100  # Pillow's own setting is restored after each open
    with pytest.raises(InputError, match="over dataset.max_image_pixels"):
        images.load_image(tmp_path / "big.png", max_pixels=224)


def test_dataset_max_image_pixels_applies_to_images_and_ground_truth(tmp_path):
    root = tmp_path / "voc"
    generate_demo_dataset(root, n_images=2, n_labelled=1, seed=0, min_size=64, max_size=72)
    image_id = voc.read_id_list(root / "ImageSets/Segmentation/train.txt")[0]
    section = {"format": "voc", "root": str(root), "classes": list(DEMO_CLASSES)}
    height, width = open_dataset(section).image_size(image_id)
    small = open_dataset({**section, "max_image_pixels": height * width - 1})
    for read in (small.load_image, small.image_size, small.semantic_gt):
        with pytest.raises(InputError, match="over dataset.max_image_pixels"):
            read(image_id)
    unlimited = open_dataset({**section, "max_image_pixels": None})
    assert unlimited.max_image_pixels is None and unlimited.load_image(image_id).shape == (height, width, 3)
    with pytest.raises(InputError, match="dataset.max_image_pixels: must be a positive integer or null"):
        open_dataset({**section, "max_image_pixels": 0})


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"not an image", "not an image format Pillow reads, or its header is corrupt"), (b"", "(OSError)")],
)
def test_an_undecodable_image_is_one_sentence_naming_it_once(tmp_path, content, problem):
    path = tmp_path / "bad.jpg"
    if content:
        path.write_bytes(content)
    else:
        Image.new("RGB", (40, 30)).save(path)
        path.write_bytes(path.read_bytes()[:-30])  # truncated: the header reads, the pixels do not
    with pytest.raises(InputError) as err:
        images.load_image(path)
    message = _one_line(err)
    assert message.startswith(f"{path}: cannot decode image: ") and message.count(str(tmp_path)) == 1
    assert problem in message and "UnidentifiedImageError" not in message


@pytest.mark.parametrize("size", [(1, 3000), (3000, 1), (1, 1)])
def test_any_size_below_the_limit_loads(tmp_path, size):
    Image.new("RGB", size, (9, 8, 7)).save(tmp_path / "x.png")
    out = images.load_image(tmp_path / "x.png")
    assert out.shape == (size[1], size[0], 3) and out[0, 0].tolist() == [9, 8, 7]


def _exif_rotated(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _oriented_pair(root: Path) -> tuple[Path, Path]:
    """A 4x6 photo and its 4x6 label PNG, both tagged 'rotate 90 degrees clockwise', marked at pixel (0, 0)."""
    photo = np.zeros((4, 6, 3), np.uint8)
    photo[0, 0] = 255
    Image.fromarray(photo).save(root / "photo.png", exif=_exif_rotated())
    label = np.zeros((4, 6), np.uint8)
    label[0, 0] = 3
    image = Image.fromarray(label, mode="P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    image.save(root / "label.png", exif=_exif_rotated())
    return root / "photo.png", root / "label.png"


def test_exif_orientation_turns_photos_and_label_pngs_alike(tmp_path):
    photo, label = _oriented_pair(tmp_path)
    for policy, shape, mark in (("ignore", (4, 6), [[0, 0]]), ("apply", (6, 4), [[0, 3]])):
        rgb = images.load_image(photo, exif=policy)
        labels = images.load_label_png(label, exif=policy)
        assert rgb.shape[:2] == labels.shape == images.image_size(photo, exif=policy) == shape
        assert np.argwhere(rgb[..., 0] == 255).tolist() == np.argwhere(labels == 3).tolist() == mark
    Image.new("RGB", (6, 4)).save(tmp_path / "photo.jpg", exif=_exif_rotated(8))
    assert images.image_size(tmp_path / "photo.jpg", exif="apply") == (6, 4)
    assert images.load_image(tmp_path / "photo.jpg", exif="apply").shape == (6, 4, 3)
    with pytest.raises(InputError, match="exif_orientation: must be one of ignore, apply"):
        images.load_image(photo, exif="auto")


# --------------------------------------------------------------------------------------------- store ids


@pytest.mark.parametrize("bad", ["zarr.json", "ZARR.JSON", ".snakemake_timestamp", ".zgroup", ".", "x" * 201])
def test_ids_that_clash_with_store_files_are_rejected(bad):
    with pytest.raises(InputError) as err:
        check_image_id(bad, "list.txt:3")
    assert err.value.where == "list.txt:3" and _one_line(err)


def test_ordinary_ids_stay_valid():
    for good in ("zarr", "a.json", "2007_000032", "COCO_val2014_000000000042", "x" * 200, "_hidden"):
        assert check_image_id(good) == good


# --------------------------------------------------------------------------------------- factory and VOC

N_IMAGES, N_LABELLED = 9, 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The generated demo in VOC layout: ``(folder holding voc/, its split lists)``."""
    base = tmp_path_factory.mktemp("formats")
    generate_demo_dataset(base / "voc", n_images=N_IMAGES, n_labelled=N_LABELLED, seed=3, min_size=64, max_size=96)
    return base, demo_split_ids(N_IMAGES, N_LABELLED)


def _voc_section(base: Path) -> dict:
    return {
        "format": "voc",
        "root": str(base / "voc"),
        "classes": list(DEMO_CLASSES),
        "train_list": "ImageSets/Segmentation/train_aug.txt",
        "eval_list": "ImageSets/Segmentation/train.txt",
    }


def test_open_dataset_checks_format_keys_and_root(tmp_path):
    with pytest.raises(InputError, match="dataset.format: unknown format 'yolo'"):
        open_dataset({"format": "yolo", "root": str(tmp_path)})
    with pytest.raises(InputError, match=r"dataset.labels_csv: unknown key for format voc"):
        open_dataset({"format": "voc", "root": str(tmp_path), "labels_csv": "x.csv"})
    with pytest.raises(InputError, match="dataset.root: folder .*nope does not exist"):
        open_dataset({"format": "voc", "root": str(tmp_path / "nope")})
    with pytest.raises(InputError, match="dataset.classes: class 'a' is listed twice"):
        open_dataset({"root": str(tmp_path), "classes": ["a", "a"]})
    with pytest.raises(InputError, match="dataset.exif_orientation: must be one of"):
        open_dataset({"root": str(tmp_path), "exif_orientation": "sideways"})
    dataset = open_dataset({"root": str(tmp_path)})  # format defaults to voc, classes to VOC's
    assert dataset.format == "voc" and dataset.classes == list(voc.VOC_CLASSES) and dataset.exif == "ignore"
    assert dataset.category_ids == list(range(1, 21))


def test_voc_dataset_wraps_the_voc_functions(demo):
    base, splits = demo
    section = _voc_section(base)
    dataset = open_dataset(section)
    root = base / "voc"
    lists = read_lists(dataset, {**section, "infer_list": None})
    assert lists == {"train_list": splits["train_aug"], "eval_list": splits["train"]}
    image_id = splits["train"][0]
    assert dataset.image_path(image_id) == root / "JPEGImages" / f"{image_id}.jpg"
    assert dataset.file_name(image_id) == f"{image_id}.jpg" and dataset.source_image_id(image_id) is None
    assert dataset.image_labels(image_id) == voc.load_image_labels(root, image_id, DEMO_CLASSES)
    np.testing.assert_array_equal(dataset.semantic_gt(image_id), voc.load_class_gt(root, image_id))
    masks, labels, ignore = dataset.instance_gt(image_id)
    expected_masks, expected_labels = voc.load_instance_gt(root, image_id)
    np.testing.assert_array_equal(masks, expected_masks)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(ignore, voc.load_class_gt(root, image_id) == 255)
    assert dataset.annotation_files([image_id]) == [str(root / "Annotations" / f"{image_id}.xml")]
    assert dataset.annotation_files([image_id], "instance") == [
        str(root / "SegmentationClass" / f"{image_id}.png"),
        str(root / "SegmentationObject" / f"{image_id}.png"),
    ]
    assert not dataset.has_ground_truth("2026_999999")


def test_voc_list_errors_name_the_line(tmp_path):
    (tmp_path / "list.txt").write_text("a\nb\na\n")
    dataset = open_dataset({"format": "voc", "root": str(tmp_path)})
    with pytest.raises(InputError, match=r"list.txt:3: duplicate image id 'a' \(first on line 1\)"):
        dataset.list_ids("list.txt")
    (tmp_path / "list.txt").write_text("a\nzarr.json\n")
    with pytest.raises(InputError, match=r"list.txt:2: image id 'zarr.json' is reserved"):
        dataset.list_ids("list.txt")


# ------------------------------------------------------------------------------------------ COCO by hand

CATEGORIES = [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]


def _png(path: Path, height: int, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (50, 60, 70)).save(path)


def _write_coco(root: Path, data: dict, split: str = "val2014") -> Path:
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    for image in data.get("images", []):
        if isinstance(image, dict) and "file_name" in image and not (root / split / image["file_name"]).exists():
            _png(root / split / image["file_name"], image.get("height", 8), image.get("width", 10))
    return path


# Rows 0-1 of columns 7-9 of an 8x10 image, as COCO's uncompressed RLE: column-major runs, zeros first.
CROWD_RLE = {"size": [8, 10], "counts": [56, 2, 6, 2, 6, 2, 6]}


def _coco_scene() -> dict:
    """Image 7 (8x10): a person polygon, a car RLE, a crowd of dogs (uncompressed RLE); image 9: nothing."""
    car = np.zeros((8, 10), bool)
    car[5:8, 6:9] = True
    from pycocotools import mask as mask_utils

    car_rle = mask_utils.encode(np.asfortranarray(car.astype(np.uint8)))
    return {
        "info": {}, "licenses": [],
        "images": [{"id": 7, "file_name": "COCO_val2014_000000000007.png", "height": 8, "width": 10},
                   {"id": 9, "file_name": "COCO_val2014_000000000009.png", "height": 8, "width": 10}],
        "annotations": [
            {"id": 30, "image_id": 7, "category_id": 18, "iscrowd": 1, "segmentation": CROWD_RLE},
            {"id": 12, "image_id": 7, "category_id": 3, "iscrowd": 0,
             "segmentation": {"size": [8, 10], "counts": car_rle["counts"].decode("ascii")}},
            {"id": 11, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [[1, 1, 4, 1, 4, 5, 1, 5]]},
        ],
        "categories": CATEGORIES,
    }  # fmt: skip


def _open_coco(root: Path, **keys) -> object:
    return open_dataset({"format": "coco", "root": str(root), "splits": ["val2014"], **keys})


def test_coco_classes_crowds_and_ground_truth(tmp_path):
    _write_coco(tmp_path, _coco_scene())
    dataset = _open_coco(tmp_path)
    assert dataset.classes == ["person", "car", "dog"] and dataset.category_ids == [1, 3, 18]
    image_id = "COCO_val2014_000000000007"
    assert dataset.list_ids("val2014") == [image_id, "COCO_val2014_000000000009"]
    assert dataset.source_image_id(image_id) == 7 and dataset.image_labels(image_id) == [0, 1, 2]  # crowd counts
    expected = np.zeros((8, 10), np.uint8)
    expected[1:5, 1:4] = 1  # polygon corners on pixel borders: x 1..4, y 1..5
    expected[5:8, 6:9] = 2
    expected[0:2, 7:10] = 255
    np.testing.assert_array_equal(dataset.semantic_gt(image_id), expected)
    masks, labels, ignore = dataset.instance_gt(image_id)
    assert labels.tolist() == [0, 1] and masks.shape == (2, 8, 10)  # annotation ids 11, 12; the crowd is none
    np.testing.assert_array_equal(masks[0], expected == 1)
    np.testing.assert_array_equal(ignore, expected == 255)
    assert dataset.has_ground_truth("COCO_val2014_000000000009", "instance")
    assert dataset.instance_gt("COCO_val2014_000000000009")[0].shape == (0, 8, 10)
    assert dataset.annotation_files([image_id], "labels") == [str(tmp_path / "annotations" / "instances_val2014.json")]

    chosen = _open_coco(tmp_path, classes=["dog", "person"])  # by name, in the given order; cars are ignored
    assert chosen.category_ids == [18, 1] and chosen.image_labels(image_id) == [0, 1]
    assert chosen.semantic_gt(image_id)[6, 7] == 0 and chosen.instance_gt(image_id)[1].tolist() == [1]
    with pytest.raises(InputError, match="dataset.classes: 'cat' is not a category name of"):
        _open_coco(tmp_path, classes=["cat"])


def test_coco_training_lists_drop_unlabelled_images_and_log_it(tmp_path, caplog):
    _write_coco(tmp_path, _coco_scene())
    dataset = _open_coco(tmp_path)
    with caplog.at_level(logging.WARNING, logger="irnet_core.data.coco"):
        assert dataset.list_ids("val2014", for_training=True) == ["COCO_val2014_000000000007"]
    assert "dropped 1 of 2 images without any label" in caplog.text
    (tmp_path / "ids.txt").write_text("COCO_val2014_000000000009\n")
    assert dataset.list_ids("ids.txt") == ["COCO_val2014_000000000009"]  # fine to infer on
    assert read_lists(dataset, {"train_list": "val2014", "infer_list": "ids.txt"}) == {
        "train_list": ["COCO_val2014_000000000007"],
        "infer_list": ["COCO_val2014_000000000009"],
    }
    (tmp_path / "ids.txt").write_text("COCO_val2014_000000000009\nCOCO_val2014_000000000008\n")
    with pytest.raises(InputError, match=r"ids.txt:2: unknown image id 'COCO_val2014_000000000008'"):
        dataset.list_ids("ids.txt")
    with pytest.raises(InputError, match="list spec 'test2015': not a split of dataset.splits"):
        dataset.list_ids("test2015")


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_coco_file_without_a_section_is_refused(tmp_path, key):
    data = _coco_scene()
    del data[key]
    path = _write_coco(tmp_path, data)
    with pytest.raises(InputError) as err:
        _open_coco(tmp_path)
    assert _one_line(err) == f"{path}: not a COCO instances file: lacks key {key!r}"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image_id": 8}, "annotation 11: image_id 8 is not in 'images'"),
        ({"category_id": 2}, "annotation 11: category_id 2 is not in 'categories'"),
        ({"iscrowd": 2}, "annotation 11: iscrowd must be 0 or 1"),
    ],
)
def test_coco_annotation_pointing_nowhere_is_refused(tmp_path, change, message):
    data = _coco_scene()
    data["annotations"][2].update(change)
    path = _write_coco(tmp_path, data)
    with pytest.raises(InputError) as err:
        _open_coco(tmp_path)
    assert _one_line(err).startswith(f"{path} {message}")


def test_coco_duplicate_ids_and_unsafe_names_are_refused(tmp_path):
    data = _coco_scene()
    data["images"][1]["file_name"] = "coco_VAL2014_000000000007.jpg"  # the same id up to letter case
    path = _write_coco(tmp_path, data)
    with pytest.raises(InputError, match=rf"{path} image 9: file name stem .* also the stem of image 7"):
        _open_coco(tmp_path)
    data["images"][1]["file_name"] = "zarr.json.png"
    _write_coco(tmp_path, data)
    with pytest.raises(InputError, match=r"image 9: image id 'zarr.json' is reserved"):
        _open_coco(tmp_path)
    data["images"][1]["file_name"] = "../x.png"
    _write_coco(tmp_path, data)
    with pytest.raises(InputError, match=r"image 9: file_name '../x.png' must stay inside the image folder"):
        _open_coco(tmp_path)


def test_coco_ids_must_be_unique_across_splits(tmp_path):
    _write_coco(tmp_path, _coco_scene(), "val2014")
    _write_coco(tmp_path, _coco_scene(), "train2014")
    dataset = open_dataset({"format": "coco", "root": str(tmp_path)})
    (tmp_path / "ids.txt").write_text("COCO_val2014_000000000007\n")
    with pytest.raises(InputError, match="instances_val2014.json image 7: id 'COCO_val2014_000000000007' is also"):
        dataset.list_ids("ids.txt")


def test_coco_sizes_must_match_the_images(tmp_path):
    data = _coco_scene()
    _write_coco(tmp_path, data)
    _png(tmp_path / "val2014" / "COCO_val2014_000000000007.png", 10, 8)  # stored rotated
    dataset = _open_coco(tmp_path)
    image_id = "COCO_val2014_000000000007"
    for read in (dataset.load_image, dataset.image_size, dataset.semantic_gt):
        with pytest.raises(InputError) as err:
            read(image_id)
        assert "image is 10x8 (H x W, exif_orientation ignore) but its annotations record 8x10" in _one_line(err)


def test_coco_bad_segmentation_names_the_annotation(tmp_path):
    data = _coco_scene()
    data["annotations"][1]["segmentation"]["size"] = [9, 10]
    path = _write_coco(tmp_path, data)
    with pytest.raises(InputError, match=rf"{path} annotation 12: RLE size \[9, 10\] differs"):
        _open_coco(tmp_path).semantic_gt("COCO_val2014_000000000007")
    data["annotations"][1]["segmentation"] = "nonsense"
    _write_coco(tmp_path, data)
    with pytest.raises(InputError, match="annotation 12: segmentation must be a list of polygons or an RLE"):
        _open_coco(tmp_path).instance_gt("COCO_val2014_000000000007")


def test_coco_index_cache_is_reused_until_the_file_changes(tmp_path, monkeypatch):
    path = _write_coco(tmp_path, _coco_scene())
    cache = tmp_path / "cache"
    built = []
    real_build = coco_module.build_split_index
    monkeypatch.setattr(coco_module, "build_split_index", lambda *a: built.append(a) or real_build(*a))
    first = _open_coco(tmp_path, index_cache=str(cache)).list_ids("val2014")
    second = _open_coco(tmp_path, index_cache=str(cache)).list_ids("val2014")
    assert first == second and len(built) == 1 and len(list(cache.iterdir())) == 1
    data = _coco_scene()
    data["images"] = data["images"][:1]
    path.write_text(json.dumps(data))
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)  # a changed file, even on coarse clocks
    assert _open_coco(tmp_path, index_cache=str(cache)).list_ids("val2014") == ["COCO_val2014_000000000007"]
    assert len(built) == 2
    next(cache.iterdir()).write_text("{broken")
    assert _open_coco(tmp_path, index_cache=str(cache)).list_ids("val2014") == ["COCO_val2014_000000000007"]
    assert len(built) == 3
    indexed = _open_coco(tmp_path, index_cache=str(cache))
    path.write_text(json.dumps(_coco_scene()))
    os.utime(path, ns=(path.stat().st_mtime_ns + 2 * 10**9,) * 2)
    with pytest.raises(InputError, match="instances_val2014.json: changed after it was indexed"):
        indexed.semantic_gt("COCO_val2014_000000000007")


def test_coco_index_of_80k_images_reopens_without_parsing_the_annotation_file(tmp_path, monkeypatch):
    n = 80_000
    images_json = ",".join(
        f'{{"id":{i},"file_name":"COCO_train2014_{i:012d}.jpg","height":480,"width":640}}' for i in range(1, n + 1)
    )
    annotations_json = ",".join(
        f'{{"id":{i},"image_id":{i},"category_id":{1 + i % 3 * 2},"iscrowd":0,"segmentation":[[0,0,9,0,9,9]]}}'
        for i in range(1, n, 2)  # every other image has no annotation
    )
    path = tmp_path / "annotations" / "instances_train2014.json"
    path.parent.mkdir()
    path.write_text(
        f'{{"images":[{images_json}],"annotations":[{annotations_json}],'
        f'"categories":[{{"id":1,"name":"a"}},{{"id":3,"name":"b"}},{{"id":5,"name":"c"}}]}}'
    )
    section = {"format": "coco", "root": str(tmp_path), "splits": ["train2014"], "index_cache": str(tmp_path / "idx")}
    open_dataset(section)  # builds the index once

    def no_parsing(path):
        raise AssertionError(f"{path} parsed again although its index is cached")

    # The plan of every Snakemake invocation opens the dataset: a 300 MB instances file must not be parsed then.
    monkeypatch.setattr(coco_module, "_read_json", no_parsing)
    dataset = open_dataset(section)
    training = dataset.list_ids("train2014", for_training=True)
    everything = dataset.list_ids("train2014")
    assert len(training) == n // 2 and len(everything) == n


# ---------------------------------------------------------------------------------------- folder by hand


@pytest.mark.parametrize(
    "relative, expected",
    [
        ("a/b c.jpg", "a__b_c"),
        ("2026_000001.jpg", "2026_000001"),
        ("x.tar.gz", "x.tar"),
        ("café/zoo.png", "cafu00e9__zoo"),
        ("猫.jpg", "u732b"),
        (".hidden.jpg", "_hidden"),
        ("noext", "noext"),
    ],
)
def test_folder_ids_are_readable_and_safe(relative, expected):
    assert folder_image_id(relative) == expected
    assert check_image_id(expected) == expected


def _folder(root: Path, rows: list[str], header: str = "image,labels", images=("a.jpg", "sub dir/b.png")) -> None:
    for name in images:
        _png(root / name, 6, 5)
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")


def _open_folder(root: Path, **keys):
    return open_dataset({"format": "folder", "root": str(root), **keys})


def test_folder_dataset_reads_rows_lists_and_classes(tmp_path, caplog):
    _folder(tmp_path, ["a.jpg,dog;cat", '"sub dir/b.png",', "c.jpg,cat"], images=("a.jpg", "sub dir/b.png", "c.jpg"))
    dataset = _open_folder(tmp_path)
    assert dataset.classes == ["cat", "dog"] and dataset.category_ids == [1, 2]  # sorted names of the CSV
    assert dataset.exif == "apply" and dataset.list_ids("all") == ["a", "sub_dir__b", "c"]
    assert dataset.image_labels("a") == [0, 1] and dataset.image_labels("sub_dir__b") == []
    assert dataset.image_path("sub_dir__b") == tmp_path / "sub dir" / "b.png"
    assert dataset.file_name("sub_dir__b") == "sub dir/b.png"
    with caplog.at_level(logging.WARNING, logger="irnet_core.data.folder"):
        assert dataset.list_ids("all", for_training=True) == ["a", "c"]
    assert "dropped 1 of 3 images without any label" in caplog.text
    (tmp_path / "lists.txt").write_text("c\nsub_dir__b\n")
    assert dataset.list_ids("lists.txt") == ["c", "sub_dir__b"]
    (tmp_path / "lists.txt").write_text("c\nnope\n")
    with pytest.raises(InputError, match=r"lists.txt:2: unknown image id 'nope'"):
        dataset.list_ids("lists.txt")
    assert dataset.annotation_files(["a", "c"]) == [str(tmp_path / "labels.csv")]
    assert not dataset.has_ground_truth("a")
    given = _open_folder(tmp_path, classes=["dog", "cat", "bird"])
    assert given.image_labels("a") == [0, 1] and given.num_classes == 3


@pytest.mark.parametrize(
    "rows, header, message",
    [
        (["a.jpg,cat"], "image,label", r"labels.csv:1: missing column 'labels'"),
        (["a.jpg,cat"], "file,labels", r"labels.csv:1: missing column 'image'"),
        (["a.jpg,cat", ",cat"], None, r"labels.csv:3: the 'image' column is empty"),
        (["a.jpg,unicorn"], None, r"labels.csv:2: unknown class 'unicorn' for image 'a.jpg'"),
        (["a.jpg,cat", "missing.jpg,cat"], None, r"labels.csv:3: image file .*missing.jpg does not exist"),
        (["a.jpg,cat", "./a.jpg,dog"], None, r"labels.csv:3: image 'a.jpg' is listed twice \(first at .*:2\)"),
        (
            ["sub dir/b.png,cat", "sub_dir/b.jpg,cat"],
            None,
            r"labels.csv:3: image 'sub_dir/b.jpg' gets id 'sub_dir__b', which clashes with 'sub dir/b.png' at .*:2",
        ),
        (["a.jpg,cat", "A.jpg,cat"], None, r"labels.csv:3: image 'A.jpg' gets id 'A', which clashes with 'a.jpg'"),
        (["../a.jpg,cat"], None, r"labels.csv:2: image path '../a.jpg' must be relative to dataset.root"),
        (["a.jpg,cat,extra"], None, r"labels.csv:2: row has 3 fields but the header has 2"),
        (["zarr.json.jpg,cat"], None, r"labels.csv:2: image id 'zarr.json' is reserved"),
    ],
)
def test_folder_csv_problems_name_the_row(tmp_path, rows, header, message):
    _folder(
        tmp_path,
        rows,
        header or "image,labels",
        images=("a.jpg", "A.jpg", "sub dir/b.png", "sub_dir/b.jpg", "zarr.json.jpg"),
    )
    with pytest.raises(InputError) as err:
        _open_folder(tmp_path, classes=["cat", "dog"])
    assert err.match(message) and _one_line(err)


def test_folder_csv_missing_or_empty_and_classes_needed_for_ground_truth(tmp_path):
    with pytest.raises(InputError, match="labels.csv: labels CSV does not exist"):
        _open_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(InputError, match="labels.csv:1: missing column 'image'"):
        _open_folder(tmp_path)
    _folder(tmp_path, ["a.jpg,"])
    with pytest.raises(InputError, match="no class name in any row"):
        _open_folder(tmp_path)
    with pytest.raises(InputError, match="dataset.classes: required when dataset.class_gt_dir is set"):
        _open_folder(tmp_path, class_gt_dir="gt")


def test_folder_ground_truth_checks_size_and_values(tmp_path):
    _folder(tmp_path, ["a.jpg,cat", "sub dir/b.png,dog"])
    classes = np.zeros((6, 5), np.uint8)
    classes[1:3, 1:3], classes[0, :] = 1, 255
    objects = np.where(classes == 1, 1, classes).astype(np.uint8)
    write_palette_png(tmp_path / "gt" / "class" / "a.png", classes)
    write_palette_png(tmp_path / "gt" / "object" / "a.png", objects)
    write_palette_png(tmp_path / "gt" / "class" / "sub dir" / "b.png", np.full((5, 6), 2, np.uint8))
    dataset = _open_folder(tmp_path, classes=["cat", "dog"], class_gt_dir="gt/class", instance_gt_dir="gt/object")
    masks, labels, ignore = dataset.instance_gt("a")
    assert labels.tolist() == [0] and masks.sum() == 4 and ignore.sum() == 5
    assert dataset.has_ground_truth("a", "instance") and not dataset.has_ground_truth("sub_dir__b", "instance")
    b_class_gt = tmp_path / "gt" / "class" / "sub dir" / "b.png"
    assert dataset.annotation_files(["sub_dir__b"], "semantic") == [str(b_class_gt)]
    with pytest.raises(InputError, match=r"b.png: ground truth is 5x6 but its image .* is 6x5"):
        dataset.semantic_gt("sub_dir__b")
    write_palette_png(tmp_path / "gt" / "class" / "a.png", np.where(classes == 1, 7, classes).astype(np.uint8))
    with pytest.raises(InputError, match=r"a.png: label value 7 is out of range \(classes 1..2"):
        dataset.semantic_gt("a")


def test_folder_ground_truth_turns_with_its_photo(tmp_path):
    _photo, label = _oriented_pair(tmp_path)
    (tmp_path / "gt").mkdir()
    label.rename(tmp_path / "gt" / "photo.png")
    (tmp_path / "labels.csv").write_text("image,labels\nphoto.png,cat\n")
    for policy, shape in (("apply", (6, 4)), ("ignore", (4, 6))):
        dataset = _open_folder(tmp_path, classes=["a", "b", "cat"], class_gt_dir="gt", exif_orientation=policy)
        gt = dataset.semantic_gt("photo")
        assert gt.shape == dataset.load_image("photo").shape[:2] == shape
        assert np.argwhere(gt == 3).tolist() == np.argwhere(dataset.load_image("photo")[..., 0] == 255).tolist()


# ------------------------------------------------------------------------------ conversions and round trip


@pytest.fixture(scope="module")
def converted(demo):
    """The demo written as COCO (RLE and polygons) and as folder + CSV: ``(base, splits, {reader: id mapping})``."""
    base, splits = demo
    val = splits["train"]
    coco_splits = {"train2014": [i for i in splits["train_aug"] if i not in val], "val2014": val}
    mappings = {
        "coco_rle": voc_to_coco(base / "voc", base / "coco_rle", coco_splits, classes=DEMO_CLASSES),
        "coco_polygon": voc_to_coco(
            base / "voc", base / "coco_polygon", coco_splits, classes=DEMO_CLASSES, segmentation="polygon"
        ),
        "folder": voc_to_folder(base / "voc", base / "folder", splits, classes=DEMO_CLASSES),
    }
    return base, splits, mappings


def _sections(base: Path) -> dict[str, dict]:
    return {
        "voc": _voc_section(base),
        "coco_rle": {"format": "coco", "root": str(base / "coco_rle"), "index_cache": str(base / "cache")},
        "coco_polygon": {"format": "coco", "root": str(base / "coco_polygon"), "classes": None},
        "folder": {"format": "folder", "root": str(base / "folder"), "classes": list(DEMO_CLASSES),
                   "class_gt_dir": "ground_truth/class", "instance_gt_dir": "ground_truth/instance",
                   "train_list": "all", "eval_list": "lists/train.txt"},
    }  # fmt: skip


@pytest.mark.parametrize("reader", ["coco_rle", "coco_polygon", "folder"])
def test_round_trip_through_every_reader_gives_the_same_dataset(converted, reader):
    base, splits, mappings = converted
    sections = _sections(base)
    source, other = open_dataset(sections["voc"]), open_dataset(sections[reader])
    mapping = mappings[reader]
    assert other.classes == source.classes == list(DEMO_CLASSES)
    assert sorted(mapping) == sorted(splits["train_aug"]) and len(set(mapping.values())) == N_IMAGES
    for voc_id, new_id in mapping.items():
        # Same file contents behind both paths, and the same decoded pixels.
        assert other.image_path(new_id).read_bytes() == source.image_path(voc_id).read_bytes()
        assert np.array_equal(other.load_image(new_id), source.load_image(voc_id))
        assert other.image_labels(new_id) == source.image_labels(voc_id) != []
        assert other.has_ground_truth(new_id, "instance")
        np.testing.assert_array_equal(other.semantic_gt(new_id), source.semantic_gt(voc_id))
        for ours, theirs in zip(other.instance_gt(new_id), source.instance_gt(voc_id), strict=True):
            assert ours.dtype == theirs.dtype
            np.testing.assert_array_equal(ours, theirs)
    assert source.instance_gt(splits["train"][0])[2].any()  # the void band really travels as ignore


def test_converted_ids_follow_the_documented_schemes(converted):
    base, splits, mappings = converted
    first, second, third = splits["train_aug"][:3]
    assert mappings["folder"][first] == first
    assert mappings["folder"][second] == f"group_a__{second}"
    assert mappings["folder"][third] == f"group_a__nested-b__{third}"
    assert (base / "folder" / "group a" / "nested-b" / f"{third}.jpg").is_file()
    coco = open_dataset(_sections(base)["coco_rle"])
    for voc_id, coco_id in mappings["coco_rle"].items():
        split = "val2014" if voc_id in splits["train"] else "train2014"
        number = coco.source_image_id(coco_id)
        assert coco_id == f"COCO_{split}_{number:012d}" and coco.file_name(coco_id) == f"{coco_id}.jpg"
        assert coco.image_path(coco_id) == base / "coco_rle" / split / f"{coco_id}.jpg"


def test_converted_coco_files_look_like_coco(converted):
    base, _, _ = converted
    for kind in ("coco_rle", "coco_polygon"):
        data = json.loads((base / kind / "annotations" / "instances_val2014.json").read_text())
        assert {"info", "licenses", "images", "annotations", "categories"} <= set(data)
        assert [c["id"] for c in data["categories"]] == sorted(coco_like_category_ids(6), reverse=True)
        crowd = [a for a in data["annotations"] if a["iscrowd"]]
        assert crowd and all(isinstance(a["segmentation"]["counts"], list) for a in crowd)
        solid = [a["segmentation"] for a in data["annotations"] if not a["iscrowd"]]
        assert all(isinstance(s, list if kind == "coco_polygon" else dict) for s in solid)
    assert coco_like_category_ids(7) == [1, 2, 3, 5, 6, 7, 9]
    coco = open_dataset(_sections(base)["coco_rle"])
    assert coco.category_ids == [1, 2, 3, 5, 6, 7]


def test_rectangle_polygons_and_uncompressed_rle_are_exact():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    masks = [rng.random((13, 17)) < 0.4, np.ones((5, 4), bool), np.zeros((3, 3), bool)]
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8], ring[3:6, 3:6] = True, False  # a hole: COCO polygons cannot draw it directly
    for mask in [*masks, ring]:
        polygons = rectangle_polygons(mask)
        decoded = (
            mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, *mask.shape)))
            if polygons
            else np.zeros(mask.shape, np.uint8)
        )
        np.testing.assert_array_equal(decoded.astype(bool), mask)
        rle = uncompressed_rle(mask)
        assert sum(rle["counts"]) == mask.size
        np.testing.assert_array_equal(mask_utils.decode(mask_utils.frPyObjects(rle, *mask.shape)).astype(bool), mask)


def test_conversion_refuses_to_lose_information(converted, tmp_path):
    base, splits, _ = converted
    image_id = splits["train"][0]
    voc_copy = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
        (voc_copy / sub).mkdir(parents=True)
    suffix = {"JPEGImages": ".jpg"}
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject"):
        name = f"{image_id}{suffix.get(sub, '.png')}"
        (voc_copy / sub / name).write_bytes((base / "voc" / sub / name).read_bytes())
    class_map = voc.load_class_gt(voc_copy, image_id)
    class_map[0, 0] = 1  # a class pixel that no instance covers
    write_palette_png(voc_copy / "SegmentationClass" / f"{image_id}.png", class_map)
    with pytest.raises(InputError, match=r"pixel \(row 0, column 0\) has class value 1 but the instances give 0"):
        voc_to_coco(voc_copy, tmp_path / "coco", {"val2014": [image_id]}, classes=DEMO_CLASSES)


def test_folder_csv_in_another_encoding_names_the_line(tmp_path):
    _folder(tmp_path, ["a.jpg,cat", '"sub dir/b.png",dog'])
    text = 'image,labels\na.jpg,cat\n"sub dir/b.png",chat noir\u00e9\n'
    (tmp_path / "labels.csv").write_bytes(text.encode("latin-1"))  # Excel's "CSV" on Windows, not UTF-8
    with pytest.raises(InputError) as err:
        _open_folder(tmp_path)
    assert _one_line(err) == f"{tmp_path / 'labels.csv'}:3: byte 0xe9 is not UTF-8 (save the CSV as UTF-8)"
    (tmp_path / "labels.csv").write_bytes("\ufeff".encode() + text.encode("utf-8"))  # a byte-order mark is fine
    assert _open_folder(tmp_path).classes == ["cat", "chat noir\u00e9"]


def test_coco_ground_truth_only_where_a_segmentation_exists(tmp_path, caplog):
    from irnet_core.data.dataset import check_ground_truth

    scene = _coco_scene()
    scene["images"].append({"id": 5, "file_name": "COCO_val2014_000000000005.png", "height": 8, "width": 10})
    scene["annotations"] += [
        {"id": 40, "image_id": 5, "category_id": 3, "iscrowd": 0, "bbox": [1, 1, 3, 2]},  # a box only
        {"id": 41, "image_id": 5, "category_id": 1, "iscrowd": 0, "segmentation": [], "bbox": [0, 0, 2, 2]},
        {"id": 42, "image_id": 7, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1, 2, 2]], "bbox": [0, 6, 2, 2]},
        {"id": 43, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [8.5, 3, 1, 1],
         "segmentation": {"size": [8, 10], "counts": [80]}},  # a zero-area RLE
    ]  # fmt: skip
    path = _write_coco(tmp_path, scene)
    with caplog.at_level(logging.WARNING, logger="irnet_core.data.coco"):
        dataset = _open_coco(tmp_path)
    warnings = [record.getMessage() for record in caplog.records]
    assert any(
        m.startswith(f"{path}: 3 annotation(s) hold an empty (1) or degenerate (2: ") and "e.g. ids 41, 42, 43" in m
        for m in warnings
    ), warnings
    assert any(
        m.startswith(f"{path}: 1 annotation(s) have no segmentation (a box only), e.g. ids 40") for m in warnings
    )

    boxed, scored, empty = "COCO_val2014_000000000005", "COCO_val2014_000000000007", "COCO_val2014_000000000009"
    # Image-level labels: every annotation counts, so the box-only image trains.
    assert dataset.image_labels(boxed) == [0, 1] and boxed in dataset.list_ids("val2014", for_training=True)
    assert not dataset.has_ground_truth(boxed) and not dataset.has_ground_truth(boxed, "instance")
    assert dataset.has_ground_truth(scored) and dataset.has_ground_truth(empty)  # no annotations: all background
    # The degenerate annotations of the scored image: not instances; their boxes are not scored.
    semantic = dataset.semantic_gt(scored)
    assert (semantic[6:8, 0:2] == 255).all() and semantic[3, 8] == 255 and semantic[3, 7] != 255
    _, labels, ignore = dataset.instance_gt(scored)
    assert labels.tolist() == [0, 1] and ignore[6:8, 0:2].all()

    check_ground_truth(dataset, {"train_list": [boxed], "eval_list": [scored, empty]})
    for key in ("eval_list", "calibration_list", "val_list"):
        with pytest.raises(InputError) as err:
            check_ground_truth(dataset, {key: [scored, boxed]})
        assert _one_line(err) == (
            f"dataset.{key}: image {boxed!r} has no ground truth to score or calibrate on: none of its annotations "
            f"in {path} (image 5) holds a usable segmentation (boxes only, empty or degenerate) "
            "(1 such image(s) in the list)"
        )


def test_a_coco_file_of_boxes_only_gives_labels_and_no_ground_truth(tmp_path, caplog):
    from irnet_core.data.dataset import check_ground_truth

    scene = _coco_scene()
    for annotation in scene["annotations"]:
        annotation.pop("segmentation")
        annotation["bbox"] = [0, 0, 2, 2]
    path = _write_coco(tmp_path, scene)
    with caplog.at_level(logging.WARNING, logger="irnet_core.data.coco"):
        dataset = _open_coco(tmp_path)
    assert any("no annotation holds a usable segmentation" in record.getMessage() for record in caplog.records)
    image_id = "COCO_val2014_000000000007"
    assert dataset.list_ids("val2014", for_training=True) == [image_id] and dataset.image_labels(image_id) == [0, 1, 2]
    assert not dataset.has_ground_truth("COCO_val2014_000000000009")  # nothing at all can be scored in this file
    with pytest.raises(InputError, match=f"{path} holds no usable segmentation at all"):
        check_ground_truth(dataset, {"eval_list": [image_id]})
