"""Zarr store layer: round trip, float16 maps, completeness checks, plain zarr readability, shard hashing."""

from __future__ import annotations

import functools
import operator
import zipfile

import numpy as np
import pytest
import zarr

from irnet_core.errors import InputError
from irnet_core.shards import shard_of, split_into_shards
from irnet_core.store import LAYOUTS, ShardReader, ShardWriter, check_image_id, open_shards


def write_two(path, layout="zip"):
    rng = np.random.default_rng(0)
    cams = {"a_1": rng.random((2, 5, 6)).astype(np.float16), "b.2": np.zeros((0, 5, 6), np.float16)}
    with ShardWriter(path, stage="cam", image_ids=list(cams), attrs={"classes": ["x", "y"]}, layout=layout) as writer:
        for image_id, cam in cams.items():
            labels = np.arange(20 * 24, dtype=np.uint8).reshape(20, 24)
            writer.write(
                image_id, {"cam": cam, "labels": labels}, {"keys": np.array([1, 3])[: len(cam)], "size": [20, 24]}
            )
    return cams


def plain_zarr_root(path, layout):
    """What the README shows: reading a store with zarr alone."""
    if layout == "zip":
        return zarr.open_group(zarr.storage.ZipStore(path / "store.zip", mode="r"), mode="r")
    return zarr.open_group(str(path), mode="r")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_round_trip_and_plain_zarr_access(tmp_path, layout):
    path = tmp_path / "shard-0.zarr"
    cams = write_two(path, layout)
    (path / ".snakemake_timestamp").write_text("")  # what Snakemake drops into directory outputs
    reader = ShardReader(path, expected_ids=["a_1"])
    arrays, attrs = reader.read("a_1")
    assert arrays["cam"].dtype == np.float16 and np.array_equal(arrays["cam"], cams["a_1"])
    assert attrs == {"keys": [1, 3], "size": [20, 24]}
    assert reader.read("b.2")[0]["cam"].shape == (0, 5, 6)
    group = plain_zarr_root(path, layout)
    assert group.attrs["complete"] is True and group["a_1"]["cam"].chunks == (1, 5, 6)
    assert group.attrs["content_digest"] == reader.content_digest
    assert np.array_equal(group["a_1"]["labels"][...], arrays["labels"])


def test_zip_layout_is_one_file_and_holds_the_directory_layouts_entries(tmp_path):
    write_two(tmp_path / "zip.zarr", "zip")
    write_two(tmp_path / "dir.zarr", "directory")
    assert sorted(p.name for p in (tmp_path / "zip.zarr").iterdir()) == ["store.zip"]
    with zipfile.ZipFile(tmp_path / "zip.zarr/store.zip") as packed:
        entries = {name: packed.read(name) for name in packed.namelist()}
    files = {
        p.relative_to(tmp_path / "dir.zarr").as_posix(): p.read_bytes()
        for p in (tmp_path / "dir.zarr").rglob("*")
        if p.is_file()
    }
    assert entries == files and len(entries) > 8  # root, 2 groups, 4 arrays with their chunks
    assert ShardReader(tmp_path / "zip.zarr").content_digest == ShardReader(tmp_path / "dir.zarr").content_digest
    # The same content gives the same file (fixed time stamps, a fixed entry order).
    first = (tmp_path / "zip.zarr/store.zip").read_bytes()
    write_two(tmp_path / "zip.zarr", "zip")
    assert (tmp_path / "zip.zarr/store.zip").read_bytes() == first


@pytest.mark.parametrize("layout", LAYOUTS)
def test_incomplete_store_is_refused(tmp_path, layout):
    path = tmp_path / "shard-0.zarr"
    with (
        pytest.raises(RuntimeError),
        ShardWriter(path, stage="cam", image_ids=["a", "b"], layout=layout) as writer,
    ):
        writer.write("a", {"x": np.zeros((2, 2), np.uint8)})
        raise RuntimeError("killed mid-shard")
    assert not (path / "store.zip").exists() and not (path / "zarr.json").exists()
    with pytest.raises(InputError, match="incomplete"):
        ShardReader(path)


def test_a_killed_zip_writer_leaves_a_store_that_readers_refuse(tmp_path):
    """SIGKILL gives the writer no chance to clean up: a truncated store.zip.partial is all there is."""
    path = tmp_path / "shard-0.zarr"
    writer = ShardWriter(path, stage="cam", image_ids=["a", "b"])
    writer.write("a", {"x": np.ones((64, 64), np.float16)})
    writer._entries.zip.fp.flush()
    truncated = (path / "store.zip.partial").read_bytes()[:-10]
    (path / "store.zip.partial").write_bytes(truncated)
    with pytest.raises(InputError, match="incomplete"):
        ShardReader(path)
    (path / "store.zip.partial").unlink()
    with pytest.raises(InputError, match="not a shard store"):
        ShardReader(path)


def test_missing_expected_image_and_duplicates_are_errors(tmp_path):
    write_two(tmp_path / "s0.zarr")
    with pytest.raises(InputError, match="lacks expected image 'zz'"):
        ShardReader(tmp_path / "s0.zarr", expected_ids=["zz"])
    write_two(tmp_path / "s1.zarr")
    with pytest.raises(InputError, match="also appears"):
        open_shards([tmp_path / "s0.zarr", tmp_path / "s1.zarr"])


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "..", "a b"])
def test_unsafe_ids_are_rejected(bad):
    with pytest.raises(InputError, match="unsafe image id"):
        check_image_id(bad, "list.txt:3")


def test_shards_are_stable_hashes_of_ids():
    ids = [f"2026_{i:06d}" for i in range(200)]
    shards = split_into_shards(ids, 4)
    assert sorted(functools.reduce(operator.iadd, shards, [])) == ids and all(len(s) > 20 for s in shards)
    # Adding an id changes exactly one shard; positions in the list do not matter.
    grown = split_into_shards([*reversed(ids), "2026_999999"], 4)
    changed = [k for k in range(4) if grown[k] != shards[k]]
    assert changed == [shard_of("2026_999999", 4)]
