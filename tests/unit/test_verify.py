"""The input check (irnet_core.pipeline.verify): every bad file found and reported, verdicts cached by content."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from irnet_core.data.voc import VOCDataset, read_id_list
from irnet_core.errors import InputError
from irnet_core.palette import write_palette_png
from irnet_core.pipeline.verify import DigestCache, check_images, prepare_labels, verify_inputs
from irnet_core.tools.demo_generator import DEMO_CLASSES, generate_demo_dataset


@pytest.fixture
def voc(tmp_path):
    root = tmp_path / "VOC"
    generate_demo_dataset(root, n_images=6, n_labelled=4, seed=1, min_size=64, max_size=80)
    return root, read_id_list(root / "ImageSets/Segmentation/train_aug.txt")


def test_every_bad_file_is_reported_and_the_job_stops_on_the_first(voc, tmp_path, caplog):
    root, ids = voc
    dataset = VOCDataset(root, classes=DEMO_CLASSES)
    image = root / f"JPEGImages/{ids[1]}.jpg"
    image.write_bytes(image.read_bytes()[:100])
    gt = root / f"SegmentationClass/{ids[3]}.png"
    write_palette_png(gt, np.zeros((7, 9), np.uint8))  # the wrong size for its image
    out = tmp_path / "verified.json"
    with caplog.at_level(logging.INFO), pytest.raises(InputError) as err:
        verify_inputs(
            dataset=dataset, image_ids=ids, ground_truth_ids=ids[:4], out_path=str(out), cache_dir=None, name="x"
        )
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{image}: cannot decode image: ")
    assert message.endswith("(1 more bad file(s): see the job's log)") and not out.exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].startswith(f"bad input: {image}: cannot decode image")
    assert errors[1].startswith(f"bad input: {gt}: ground truth is 7x9 but its image")
    assert errors[2] == f"2 of {len(ids)} images have a bad file (each listed above)"


def test_verdicts_are_cached_by_content_digest(voc, tmp_path):
    root, ids = voc
    dataset = VOCDataset(root, classes=DEMO_CLASSES)
    cache_path = tmp_path / "cache.json"
    cache = DigestCache.load(cache_path)
    first = check_images(dataset, ids, set(ids[:2]), cache)
    assert first.decoded == ids and not first.problems and cache.hashed == len(ids) + 2 * 2  # images, 2 GT pairs
    cache.save(cache_path)
    sizes = first.sizes

    cache = DigestCache.load(cache_path)
    again = check_images(dataset, ids, set(ids[:2]), cache)
    assert again.decoded == [] and cache.hashed == 0 and again.sizes == sizes  # unchanged files: not even read

    edited = root / f"JPEGImages/{ids[2]}.jpg"
    edited.write_bytes(edited.read_bytes() + b"\0")  # other bytes, the same picture
    touched = root / f"JPEGImages/{ids[4]}.jpg"
    touched.write_bytes(touched.read_bytes())  # same bytes, a new time: hashed again, not decoded
    cache = DigestCache.load(cache_path)
    third = check_images(dataset, ids, set(ids[:2]), cache)
    assert third.decoded == [ids[2]] and cache.hashed == 2 and not third.problems

    # A lowered pixel limit applies to cached images too (the limit is not part of the cache key).
    dataset.max_image_pixels = 100
    limited = check_images(dataset, ids[:1], (), cache)
    assert "over dataset.max_image_pixels (100)" in str(limited.problems[0])


def test_prepare_labels_checks_every_list_and_reuses_the_shard_jobs_verdicts(voc, tmp_path, caplog):
    root, ids = voc
    dataset = VOCDataset(root, classes=DEMO_CLASSES)
    train, others = ids[:4], ids[4:]
    caches = tmp_path / "cache"
    shard = tmp_path / "verified.json"
    verify_inputs(
        dataset=dataset, image_ids=ids[:5], ground_truth_ids=(), out_path=str(shard), cache_dir=str(caches), name="shard-0"
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="irnet_core.pipeline.verify"):
        gated = prepare_labels(
            dataset=dataset, image_ids=train, out_path=str(tmp_path / "a.json"), also_check=others, cache_dir=str(caches)
        )  # fmt: skip
    # Only the image no shard job had checked is decoded; the shard job's digests and sizes are the same.
    assert any(r.getMessage() == f"decoded: {ids[5]}" for r in caplog.records)
    checked = json.loads(shard.read_text())
    assert gated["image_digests"] == {i: checked["image_digests"][i] for i in train}
    alone = prepare_labels(dataset=dataset, image_ids=train, out_path=str(tmp_path / "b.json"))
    assert gated == alone and gated["sizes"][ids[0]] == list(dataset.image_size(ids[0]))
    # A bad image of another list stops it: no training starts before every list is checked.
    image = root / f"JPEGImages/{others[-1]}.jpg"
    image.write_bytes(image.read_bytes()[:100])
    with pytest.raises(InputError, match=f"{others[-1]}.jpg: cannot decode image"):
        prepare_labels(dataset=dataset, image_ids=train, out_path=str(tmp_path / "c.json"), also_check=others)


def test_the_cache_keeps_only_the_verdicts_of_current_files(voc, tmp_path):
    root, ids = voc
    dataset = VOCDataset(root, classes=DEMO_CLASSES)
    cache_path = tmp_path / "cache.json"
    for content in (b"", b"\0", b"\0\0"):  # the same image edited twice
        edited = root / f"JPEGImages/{ids[0]}.jpg"
        edited.write_bytes(edited.read_bytes() + content)
        cache = DigestCache.load(cache_path)
        check_images(dataset, ids, (), cache)
        cache.save(cache_path)
    saved = json.loads(cache_path.read_text())
    assert len(saved["passed"]) == len(ids) and len(saved["files"]) == len(ids)
