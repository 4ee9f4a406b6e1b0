"""The one place that knows the Zarr layout of the per-shard stores.

Layout (zarr-python 3, Zarr format 3), one store per stage and shard, written by exactly one job:

    shard-K.zarr/                 root group; attributes: stage, image_ids (expected), complete, irnet_core
      <image_id>/                 one group per image; attributes: whatever the stage needs (keys, size, stride)
        <array>                   e.g. cam (K, h, w) float16, high_res (K, H, W) float16, labels (H, W) uint8

Every array is compressed with Zstandard and chunked one plane per chunk (leading axes of size 1), so reading
one image or one class plane touches only its own chunks. A store counts as complete only when its root
attribute ``complete`` is true *and* every expected image id has a group: missing chunks would otherwise
silently read as fill values. Metadata is consolidated once, when the writer closes the store.

The writer also records ``content_digest``: a SHA-256 over what it wrote (per image, in the order of the
expected ids: id, attributes, and every array's name, dtype, shape and bytes). Consumers that must know
whether their input changed (a training deciding whether a checkpoint is its own) compare digests, never file
names or sizes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from . import __version__
from .errors import InputError

SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")


@contextlib.contextmanager
def _quiet_zarr() -> Iterator[None]:
    """Silence two known, harmless zarr warnings around calls that list members or consolidate.

    Snakemake drops `.snakemake_timestamp` into directory outputs and zarr warns about the stranger when it lists
    members; consolidated metadata is not yet in the v3 spec and zarr says so on every consolidation. A local
    filter (not a global one) keeps this working under pytest's warnings-as-errors.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*\.snakemake_timestamp.*")
        warnings.filterwarnings("ignore", message=r"Consolidated metadata is currently not part")
        yield


_COMPRESSOR = ZstdCodec(level=3)


# Names a shard store's root holds besides the image groups: Zarr v3 metadata (consolidated metadata lives in
# it too). Compared case-insensitively, because on macOS and Windows file systems 'ZARR.JSON' is the same file.
RESERVED_IDS = frozenset({"zarr.json"})
# Longer ids would break file names such as '<id>.png.tmp' on file systems limited to 255 bytes per name.
MAX_ID_LENGTH = 200


def check_image_id(image_id: str, where: object = "image id") -> str:
    """Return ``image_id`` if it is safe to use as a file and group name, else raise :class:`InputError`.

    Safe: :data:`SAFE_ID` characters, at most :data:`MAX_ID_LENGTH` long, not starting with '.' (hidden
    files: Zarr v2's ``.zgroup``/``.zattrs``/``.zmetadata`` and Snakemake's ``.snakemake_timestamp`` sit in
    store folders; also rules out '.' and '..') and none of :data:`RESERVED_IDS` in any letter case.
    """
    if not isinstance(image_id, str) or not SAFE_ID.fullmatch(image_id):
        raise InputError(where, f"unsafe image id {image_id!r} (allowed: letters, digits, '_', '.', '-')")
    if image_id.startswith("."):
        raise InputError(
            where,
            f"unsafe image id {image_id!r} (must not start with '.': hidden names are "
            "reserved for store and workflow files)",
        )
    if image_id.casefold() in RESERVED_IDS:
        raise InputError(
            where,
            f"image id {image_id!r} is reserved (a Zarr store keeps its own {image_id.lower()!r} "
            "beside the image groups); rename the image",
        )
    if len(image_id) > MAX_ID_LENGTH:
        raise InputError(
            where,
            f"image id {image_id[:40]!r}... is {len(image_id)} characters long "
            f"(at most {MAX_ID_LENGTH}, so that file names derived from it stay valid)",
        )
    return image_id


def _plane_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    # One chunk per 2-D plane: leading axes get chunk size 1. Very large planes are tiled at 2048.
    if len(shape) < 2:
        return tuple(max(1, s) for s in shape)
    lead = (1,) * (len(shape) - 2)
    return lead + tuple(max(1, min(s, 2048)) for s in shape[-2:])


def _plain(value: Any) -> Any:
    """Convert numpy scalars/arrays inside attributes to JSON-friendly Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ShardWriter:
    """Write one shard store. Use as a context manager; the store is marked complete only on a clean exit."""

    def __init__(self, path: str | Path, *, stage: str, image_ids: Iterable[str], attrs: Mapping | None = None):
        self.path = Path(path)
        self.image_ids = [check_image_id(i, self.path) for i in image_ids]
        self._written: dict[str, str] = {}
        self.root = zarr.open_group(str(self.path), mode="w", zarr_format=3)
        self.root.attrs.update(
            _plain(
                {
                    "stage": stage,
                    "image_ids": self.image_ids,
                    "complete": False,
                    "irnet_core": __version__,
                    **(attrs or {}),
                }
            )
        )

    def write(self, image_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping | None = None) -> None:
        if image_id not in self.image_ids:
            raise ValueError(f"{self.path}: image id {image_id!r} is not one of this shard's images")
        group = self.root.create_group(image_id, overwrite=True)
        plain_attrs = _plain(dict(attrs or {}))
        group.attrs.update(plain_attrs)
        digest = hashlib.sha256(image_id.encode())
        digest.update(json.dumps(plain_attrs, sort_keys=True).encode())
        for name, data in arrays.items():
            data = np.ascontiguousarray(data)
            arr = group.create_array(
                name, shape=data.shape, dtype=data.dtype, chunks=_plane_chunks(data.shape), compressors=_COMPRESSOR
            )
            if data.size:
                arr[...] = data
            digest.update(f"{name}:{data.dtype.str}:{data.shape}".encode())
            digest.update(data.tobytes())
        self._written[image_id] = digest.hexdigest()

    def close(self) -> None:
        missing = [i for i in self.image_ids if i not in self._written]
        if missing:
            raise RuntimeError(f"{self.path}: {len(missing)} image(s) never written, e.g. {missing[0]!r}")
        combined = hashlib.sha256()
        for image_id in self.image_ids:
            combined.update(self._written[image_id].encode())
        self.root.attrs.update({"content_digest": combined.hexdigest(), "complete": True})
        with _quiet_zarr():
            zarr.consolidate_metadata(str(self.path))

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


class ShardReader:
    """Read a complete shard store; refuses incomplete ones."""

    def __init__(self, path: str | Path, expected_ids: Iterable[str] | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "store does not exist")
        try:
            with _quiet_zarr():
                self.root = zarr.open_group(str(self.path), mode="r", zarr_format=3)
        except Exception as exc:  # zarr raises several types for a broken store
            raise InputError(self.path, f"not a readable Zarr store ({type(exc).__name__}: {exc})") from None
        attrs = self.root.attrs.asdict()
        if not attrs.get("complete", False):
            raise InputError(self.path, "store is incomplete (its writer did not finish); rerun the job that makes it")
        self.attrs = attrs
        self.image_ids: list[str] = list(attrs.get("image_ids", []))
        with _quiet_zarr():
            present = set(self.root.group_keys())
        missing = [i for i in self.image_ids if i not in present]
        if missing:
            raise InputError(self.path, f"store lacks {len(missing)} of its image groups, e.g. {missing[0]!r}")
        if expected_ids is not None:
            absent = [i for i in expected_ids if i not in set(self.image_ids)]
            if absent:
                raise InputError(self.path, f"store lacks expected image {absent[0]!r} ({len(absent)} missing)")

    def __contains__(self, image_id: str) -> bool:
        return image_id in self.image_ids

    @property
    def content_digest(self) -> str:
        """SHA-256 of everything the writer stored (see the module docstring)."""
        digest = self.attrs.get("content_digest")
        if not digest:
            raise InputError(self.path, "store has no content digest (written by an older version); rerun its job")
        return digest

    def attrs_of(self, image_id: str) -> dict:
        return self.root[image_id].attrs.asdict()

    def read(self, image_id: str, names: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Return ``(arrays, attrs)`` of one image; ``names`` restricts which arrays are loaded."""
        if image_id not in self.image_ids:
            raise InputError(self.path, f"image {image_id!r} is not in this store")
        group = self.root[image_id]
        keys = list(names) if names is not None else sorted(group.array_keys())
        return {k: np.asarray(group[k][...]) for k in keys}, group.attrs.asdict()


def open_shards(paths: Iterable[str | Path]) -> dict[str, ShardReader]:
    """Open several shard stores and index them by image id (each id must appear once)."""
    index: dict[str, ShardReader] = {}
    for path in paths:
        reader = ShardReader(path)
        for image_id in reader.image_ids:
            if image_id in index:
                raise InputError(path, f"image {image_id!r} also appears in {index[image_id].path}")
            index[image_id] = reader
    return index


def recorded_sizes(path: str | Path) -> list[tuple[int, int]]:
    """The image sizes ``(H, W)`` that a store's groups record (attribute ``size``), from its consolidated
    metadata only: cheap enough for a scheduler's resource estimate."""
    with _quiet_zarr():
        root = zarr.open_consolidated(str(path), mode="r", zarr_format=3)
        sizes = []
        for _, group in root.groups():
            size = group.attrs.get("size")
            if size is not None:
                sizes.append((int(size[0]), int(size[1])))
    return sizes
