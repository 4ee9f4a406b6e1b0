"""The dataset formats behind one interface: VOC, COCO 2014 and folder + CSV; image rules; conversions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irnet_core.data import images, voc
from irnet_core.data.dataset import open_dataset, read_lists
from irnet_core.data.demo import DEMO_CLASSES, demo_split_ids, generate_demo_dataset
from irnet_core.errors import InputError
from irnet_core.palette import voc_palette, write_palette_png
from irnet_core.store import check_image_id


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------- image rules


def test_voc_module_reexports_the_shared_readers():
    assert voc.load_image is images.load_image and voc.image_size is images.image_size
    from irnet_core.data import id_lists

    assert voc.read_id_list is id_lists.read_id_list


@pytest.mark.parametrize("side", [11, 15])  # 121 px: Pillow would only warn; 225 px: Pillow raises
def test_decompression_bombs_are_one_input_error(tmp_path, monkeypatch, side):
    Image.new("RGB", (side, side)).save(tmp_path / "big.png")
    write_palette_png(tmp_path / "big_label.png", np.zeros((side, side), np.uint8))
    Image.new("RGB", (10, 10)).save(tmp_path / "ok.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for read in (images.load_image, images.image_size):
        with pytest.raises(InputError) as err:
            read(tmp_path / "big.png")
        assert err.value.where == str(tmp_path / "big.png") and "too large" in _one_line(err)
    with pytest.raises(InputError, match="big_label.png: label PNG is too large"):
        images.load_label_png(tmp_path / "big_label.png")
    assert images.load_image(tmp_path / "ok.png").shape == (10, 10, 3)


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
    return {"format": "voc", "root": str(base / "voc"), "classes": list(DEMO_CLASSES),
            "train_list": "ImageSets/Segmentation/train_aug.txt", "eval_list": "ImageSets/Segmentation/train.txt"}


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
        str(root / "SegmentationClass" / f"{image_id}.png"), str(root / "SegmentationObject" / f"{image_id}.png")]
    assert not dataset.has_ground_truth("2026_999999")


def test_voc_list_errors_name_the_line(tmp_path):
    (tmp_path / "list.txt").write_text("a\nb\na\n")
    dataset = open_dataset({"format": "voc", "root": str(tmp_path)})
    with pytest.raises(InputError, match=r"list.txt:3: duplicate image id 'a' \(first on line 1\)"):
        dataset.list_ids("list.txt")
    (tmp_path / "list.txt").write_text("a\nzarr.json\n")
    with pytest.raises(InputError, match=r"list.txt:2: image id 'zarr.json' is reserved"):
        dataset.list_ids("list.txt")
