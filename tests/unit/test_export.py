"""Label PNG and COCO exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from irnet_core.export import INFO, CocoWriter, write_label_png
from irnet_core.instances import Instances
from irnet_core.palette import read_label_png

CLASSES = ["aeroplane", "bicycle", "bird"]


def _images() -> list[tuple[str, str, int, int, Instances]]:
    first = np.zeros((3, 6, 8), bool)
    first[0, 1:3, 2:5] = True  # 6 px, bbox x=2 y=1 w=3 h=2
    first[1, 4:6, 0:1] = True  # 2 px
    # first[2] stays empty and must be skipped
    second = np.zeros((1, 5, 4), bool)
    second[0] = True
    return [
        ("2007_000032", "2007_000032.jpg", 6, 8, Instances(first, [0, 2, 1], [0.9, 0.0, 0.5])),
        ("2007_000039", "2007_000039.jpg", 5, 4, Instances(second, [1], [0.25])),
        ("2007_000063", "2007_000063.jpg", 3, 3, Instances.empty((3, 3))),
    ]


def _write(path: Path, images, category_ids=None, first_source_id: int | None = None) -> dict:
    """Export ``images`` with :class:`CocoWriter` (source ids from ``first_source_id`` on, else 1..N) and read
    the file back as strict JSON."""
    with CocoWriter(path, CLASSES, category_ids=category_ids) as writer:
        for position, (key, file_name, height, width, inst) in enumerate(images):
            source_id = None if first_source_id is None else first_source_id + position
            writer.add(key, file_name, (height, width), inst, source_id=source_id)
    return json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in {path}"))


def test_coco_file_loads_and_decodes_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = _images()
    path = tmp_path / "out" / "instances.json"
    _write(path, images)
    coco = COCO(str(path))
    capsys.readouterr()  # COCO prints progress lines

    assert [img["id"] for img in coco.dataset["images"]] == [1, 2, 3]
    assert [img["image_key"] for img in coco.dataset["images"]] == ["2007_000032", "2007_000039", "2007_000063"]
    assert "info" in coco.dataset and coco.dataset["licenses"] == []
    assert coco.imgs[2]["height"] == 5 and coco.imgs[2]["width"] == 4
    assert [(c["id"], c["name"], c["supercategory"]) for c in coco.dataset["categories"]] == [
        (1, "aeroplane", "object"),
        (2, "bicycle", "object"),
        (3, "bird", "object"),
    ]

    anns = coco.dataset["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3]  # unique over the file; the empty mask is skipped
    assert [a["image_id"] for a in anns] == [1, 1, 2]
    assert [a["category_id"] for a in anns] == [1, 3, 2]
    assert [a["score"] for a in anns] == [pytest.approx(0.9), 0.0, 0.25]
    assert [a["area"] for a in anns] == [6.0, 2.0, 20.0]
    assert anns[0]["bbox"] == [2.0, 1.0, 3.0, 2.0]
    assert all(a["iscrowd"] == 0 and isinstance(a["segmentation"]["counts"], str) for a in anns)

    np.testing.assert_array_equal(coco.annToMask(coco.anns[1]), images[0][4].masks[0])
    np.testing.assert_array_equal(coco.annToMask(coco.anns[2]), images[0][4].masks[1])
    np.testing.assert_array_equal(coco.annToMask(coco.anns[3]), images[1][4].masks[0])
    assert coco.getAnnIds(imgIds=[1]) == [1, 2]
    assert coco.getAnnIds(imgIds=[3]) == []


def test_coco_rejects_inconsistent_input(tmp_path: Path) -> None:
    image_id, file_name, _, _, inst = _images()[0]
    with pytest.raises(ValueError, match="do not match"):
        _write(tmp_path / "size.json", [(image_id, file_name, 7, 8, inst)])
    with pytest.raises(ValueError, match="classes"), CocoWriter(tmp_path / "classes.json", CLASSES[:2]) as writer:
        writer.add(image_id, file_name, (6, 8), inst)
    assert not list(tmp_path.iterdir())  # a failed export leaves neither a file nor a temporary one


def test_source_ids_change_only_the_ids_of_the_file(tmp_path: Path) -> None:
    images = _images()
    numbered = _write(tmp_path / "numbered.json", images)
    sourced = _write(tmp_path / "sourced.json", images, category_ids=[1, 3, 7], first_source_id=100)
    assert [i["id"] for i in sourced["images"]] == [100, 101, 102]
    assert [a["image_id"] for a in sourced["annotations"]] == [100, 100, 101]
    assert [a["category_id"] for a in sourced["annotations"]] == [1, 7, 3]  # the source's category ids
    assert [c["id"] for c in sourced["categories"]] == [1, 3, 7]
    ids = ("id", "image_id", "category_id")
    for a, b in zip(sourced["annotations"], numbered["annotations"], strict=True):
        assert a["id"] == b["id"] and {k: v for k, v in a.items() if k not in ids} == {
            k: v for k, v in b.items() if k not in ids
        }
    assert sourced["info"] == numbered["info"] == INFO and sourced["licenses"] == []
    assert not list(tmp_path.glob("*.tmp"))


def test_write_label_png_round_trip(tmp_path: Path) -> None:
    label = np.array([[0, 1, 255], [20, 3, 0]], np.uint8)
    path = tmp_path / "sub" / "label.png"
    write_label_png(path, label)
    np.testing.assert_array_equal(read_label_png(path), label)
