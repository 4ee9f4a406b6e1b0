"""Zarr store layer: round trip, float16 maps, completeness checks, plain zarr readability, shard hashing."""

from __future__ import annotations

import functools
import operator

import numpy as np
import pytest
import zarr

from irnet_core.errors import InputError
from irnet_core.shards import shard_of, split_into_shards
from irnet_core.store import ShardReader, ShardWriter, check_image_id, open_shards


def write_two(path):
    rng = np.random.default_rng(0)
    cams = {"a_1": rng.random((2, 5, 6)).astype(np.float16), "b.2": np.zeros((0, 5, 6), np.float16)}
    with ShardWriter(path, stage="cam", image_ids=list(cams), attrs={"classes": ["x", "y"]}) as writer:
        for image_id, cam in cams.items():
            writer.write(image_id, {"cam": cam}, {"keys": np.array([1, 3])[: len(cam)], "size": [20, 24]})
    return cams


def test_round_trip_and_plain_zarr_access(tmp_path):
    path = tmp_path / "shard-0.zarr"
    cams = write_two(path)
    (path / ".snakemake_timestamp").write_text("")  # what Snakemake drops into directory outputs
    reader = ShardReader(path, expected_ids=["a_1"])
    arrays, attrs = reader.read("a_1")
    assert arrays["cam"].dtype == np.float16 and np.array_equal(arrays["cam"], cams["a_1"])
    assert attrs == {"keys": [1, 3], "size": [20, 24]}
    assert reader.read("b.2")[0]["cam"].shape == (0, 5, 6)
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["complete"] is True and group["a_1"]["cam"].chunks == (1, 5, 6)


def test_incomplete_store_is_refused(tmp_path):
    path = tmp_path / "shard-0.zarr"
    with pytest.raises(RuntimeError), ShardWriter(path, stage="cam", image_ids=["a", "b"]) as writer:
        writer.write("a", {"x": np.zeros((2, 2), np.uint8)})
        raise RuntimeError("killed mid-shard")
    with pytest.raises(InputError, match="incomplete"):
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
