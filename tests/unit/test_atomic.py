"""Atomic writes: the target holds the old content or the new, never part of it, and no temporary file stays."""

from __future__ import annotations

import os
import stat

import pytest

from irnet_core.atomic import atomic_path, atomic_write_text


def test_the_temporary_file_is_hidden_beside_the_target_and_renamed_over_it(tmp_path):
    target = tmp_path / "new" / "result.json"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.name.startswith(".") and temporary.suffix == ".tmp"
        temporary.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_concurrent_writers_get_their_own_temporary_files(tmp_path):
    with atomic_path(tmp_path / "a.txt") as first, atomic_path(tmp_path / "a.txt") as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert (tmp_path / "a.txt").read_text() == "first"  # the outer block ends last


def test_written_files_get_the_permissions_of_any_other_output(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.txt", "text")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o644
    assert (tmp_path / "shared.txt").read_text() == "text"
