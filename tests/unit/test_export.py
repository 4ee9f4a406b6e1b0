"""Label PNG and COCO exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from irnet_core.export import CocoWriter, coco_instances, write_coco, write_label_png
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


def test_coco_file_loads_and_decodes_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = _images()
    coco_dict = coco_instances(images, CLASSES)
    json.dumps(coco_dict, allow_nan=False)  # plain Python types only
    path = tmp_path / "out" / "instances.json"
    write_coco(path, coco_dict)
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


def test_coco_rejects_inconsistent_input() -> None:
    image_id, file_name, _, _, inst = _images()[0]
    with pytest.raises(ValueError, match="do not match"):
        coco_instances([(image_id, file_name, 7, 8, inst)], CLASSES)
    with pytest.raises(ValueError, match="classes"):
        coco_instances([(image_id, file_name, 6, 8, inst)], CLASSES[:2])


def test_streamed_file_equals_the_in_memory_one_and_keeps_source_ids(tmp_path: Path) -> None:
    images = _images()
    with CocoWriter(tmp_path / "stream.json", CLASSES, category_ids=[1, 3, 7]) as writer:
        for position, (key, file_name, height, width, inst) in enumerate(images):
            writer.add(key, file_name, (height, width), inst, source_id=100 + position)
    streamed = json.loads((tmp_path / "stream.json").read_text())
    in_memory = coco_instances(images, CLASSES, category_ids=[1, 3, 7])
    assert [i["id"] for i in streamed["images"]] == [100, 101, 102]
    assert [a["category_id"] for a in streamed["annotations"]] == [1, 7, 3]  # the source's category ids
    for a, b in zip(streamed["annotations"], in_memory["annotations"], strict=True):
        assert {k: v for k, v in a.items() if k != "image_id"} == {k: v for k, v in b.items() if k != "image_id"}
    assert streamed["categories"] == in_memory["categories"] and streamed["info"] == in_memory["info"]
    assert not list(tmp_path.glob("*.tmp"))


def test_write_label_png_round_trip(tmp_path: Path) -> None:
    label = np.array([[0, 1, 255], [20, 3, 0]], np.uint8)
    path = tmp_path / "sub" / "label.png"
    write_label_png(path, label)
    np.testing.assert_array_equal(read_label_png(path), label)
