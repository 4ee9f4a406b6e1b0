"""The one place that knows the Zarr layout of the per-shard stores.

Layout (zarr-python 3, Zarr format 3), one store per stage and shard, written by exactly one job:

    shard-K.zarr/                 root group; attributes: stage, image_ids (expected), complete, irnet_core
      <image_id>/                 one group per image; attributes: whatever the stage needs (keys, size, stride)
        <array>                   e.g. cam (K, h, w) float16, labels (H, W) uint8

Two layouts hold the same entries byte for byte (the run setting ``compute.store_layout`` picks one; it never
changes a result):

- ``zip`` (the default): the whole hierarchy in one file, ``shard-K.zarr/store.zip`` (uncompressed zip: the
  chunks are already Zstandard-compressed), read with ``zarr.storage.ZipStore``. One file per shard instead of
  several per image, which is what shared cluster filesystems (inode quotas, metadata servers) need.
- ``directory``: one file per entry, ``shard-K.zarr/<image_id>/<array>/c/...`` (a plain Zarr directory store).

The writer produces each entry exactly once: an image's group is built in memory and handed to the layout when
it is complete, and the root metadata (attributes, ``complete``, ``content_digest`` and the consolidated
metadata of every image) is written last. So a store is complete exactly when its root metadata exists: a
killed writer leaves image entries without a root (directory) or ``store.zip.partial`` without ``store.zip``
(zip), and :class:`ShardReader` refuses both. The zip is renamed into place only after it is closed.

Every array is compressed with Zstandard and chunked one plane per chunk (leading axes of size 1), so reading
one image or one class plane touches only its own chunks.

The writer also records ``content_digest``: a SHA-256 over what it wrote (per image, in the order of the
expected ids: id, attributes, and every array's name, dtype, shape and bytes). Consumers that must
know whether their input changed (a training deciding whether a checkpoint is its own) compare digests, never
file names or sizes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.buffer.cpu import Buffer

from . import __version__
from .errors import InputError
from .settings import as_plain

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


LAYOUTS = ("zip", "directory")
ZIP_NAME = "store.zip"
_PARTIAL_ZIP = ZIP_NAME + ".partial"
# A fixed time stamp for zip entries, so that the same content gives the same file.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_default_layout = "zip"


def use_layout(layout: str) -> None:
    """Set the layout of the stores this process writes (the run setting ``compute.store_layout``)."""
    global _default_layout
    if layout not in LAYOUTS:
        raise ValueError(f"store layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    _default_layout = layout


class _ZipEntries:
    """Entries into ``<store>/store.zip.partial``, renamed to ``store.zip`` once closed."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = zipfile.ZipFile(path / _PARTIAL_ZIP, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def put(self, key: str, data: bytes) -> None:
        info = zipfile.ZipInfo(key, date_time=_ZIP_TIME)
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, data)

    def commit(self) -> None:
        self.zip.close()
        with open(self.path / _PARTIAL_ZIP, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.path / _PARTIAL_ZIP, self.path / ZIP_NAME)

    def abandon(self) -> None:
        self.zip.close()


class _DirectoryEntries:
    """Entries as files of a Zarr directory store."""

    def __init__(self, path: Path):
        self.path = path

    def put(self, key: str, data: bytes) -> None:
        target = self.path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def commit(self) -> None:
        pass

    def abandon(self) -> None:
        pass


def _entries_of(build, present: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """The entries of an in-memory Zarr store that holds ``present`` after ``build(store)`` wrote into it."""
    entries = {key: Buffer.from_bytes(data) for key, data in (present or {}).items()}
    build(zarr.storage.MemoryStore(store_dict=entries))
    return {key: value.to_bytes() for key, value in entries.items()}


class ShardWriter:
    """Write one shard store. Use as a context manager; the store is marked complete only on a clean exit."""

    def __init__(
        self,
        path: str | Path,
        *,
        stage: str,
        image_ids: Iterable[str],
        attrs: Mapping | None = None,
        layout: str | None = None,
    ):
        self.path = Path(path)
        self.image_ids = [check_image_id(i, self.path) for i in image_ids]
        self.layout = layout or _default_layout
        if self.layout not in LAYOUTS:
            raise ValueError(f"store layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        self.attrs = as_plain({"stage": stage, "image_ids": self.image_ids, "irnet_core": __version__, **(attrs or {})})
        self._written: dict[str, str] = {}
        self._metadata: dict[str, bytes] = {}  # every group's and array's zarr.json, for the consolidated root
        if self.path.exists():  # a store is written whole, never appended to
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        self._entries = _ZipEntries(self.path) if self.layout == "zip" else _DirectoryEntries(self.path)

    def write(self, image_id: str, arrays: Mapping[str, np.ndarray], attrs: Mapping | None = None) -> None:
        if image_id not in self.image_ids:
            raise ValueError(f"{self.path}: image id {image_id!r} is not one of this shard's images")
        if image_id in self._written:
            raise ValueError(f"{self.path}: image id {image_id!r} written twice")
        plain_attrs = as_plain(dict(attrs or {}))
        digest = hashlib.sha256(image_id.encode())
        digest.update(json.dumps(plain_attrs, sort_keys=True).encode())
        stored = {name: np.ascontiguousarray(data) for name, data in arrays.items()}
        for name, data in stored.items():
            digest.update(f"{name}:{data.dtype.str}:{data.shape}".encode())
            digest.update(data.tobytes())

        def build(store) -> None:
            group = zarr.create_group(store=store, path=image_id, attributes=plain_attrs, zarr_format=3)
            for name, data in stored.items():
                arr = group.create_array(
                    name, shape=data.shape, dtype=data.dtype, chunks=_plane_chunks(data.shape), compressors=_COMPRESSOR
                )
                if data.size:
                    arr[...] = data

        for key, data in sorted(_entries_of(build).items()):
            if key == "zarr.json":  # the root, written by close()
                continue
            self._entries.put(key, data)
            if key.endswith("zarr.json"):
                self._metadata[key] = data
        self._written[image_id] = digest.hexdigest()

    def close(self) -> None:
        missing = [i for i in self.image_ids if i not in self._written]
        if missing:
            self._entries.abandon()
            raise RuntimeError(f"{self.path}: {len(missing)} image(s) never written, e.g. {missing[0]!r}")
        combined = hashlib.sha256()
        for image_id in self.image_ids:
            combined.update(self._written[image_id].encode())
        root_attrs = {**self.attrs, "content_digest": combined.hexdigest(), "complete": True}

        def build(store) -> None:
            zarr.create_group(store=store, attributes=root_attrs, zarr_format=3)
            with _quiet_zarr():
                zarr.consolidate_metadata(store)

        self._entries.put("zarr.json", _entries_of(build, self._metadata)["zarr.json"])
        self._entries.commit()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._entries.abandon()


class ShardReader:
    """Read a complete shard store; refuses incomplete ones."""

    def __init__(self, path: str | Path, expected_ids: Iterable[str] | None = None):
        self.path = Path(path)
        self.root = open_root(self.path)
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

    def array_names(self, image_id: str) -> list[str]:
        if image_id not in self.image_ids:
            raise InputError(self.path, f"image {image_id!r} is not in this store")
        return sorted(self.root[image_id].array_keys())

    def attrs_of(self, image_id: str) -> dict:
        return self.root[image_id].attrs.asdict()

    def read(self, image_id: str, names: Iterable[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """Return ``(arrays, attrs)`` of one image; ``names`` restricts which arrays are loaded."""
        if image_id not in self.image_ids:
            raise InputError(self.path, f"image {image_id!r} is not in this store")
        group = self.root[image_id]
        keys = list(names) if names is not None else sorted(group.array_keys())
        return {k: np.asarray(group[k][...]) for k in keys}, group.attrs.asdict()


def open_root(path: str | Path):
    """The root group of a shard store in either layout (read-only); refuses what is not a store or is half
    written. Readers use :class:`ShardReader`; this is for tools that need the Zarr group itself."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "store does not exist")
    if (path / ZIP_NAME).is_file():
        store = zarr.storage.ZipStore(path / ZIP_NAME, mode="r")
    elif (path / "zarr.json").is_file():
        store = zarr.storage.LocalStore(path, read_only=True)
    elif (path / _PARTIAL_ZIP).exists() or any(path.glob("*/zarr.json")):
        raise InputError(path, "store is incomplete (its writer did not finish); rerun the job that makes it")
    else:
        raise InputError(path, "not a shard store (neither store.zip nor zarr.json in it)")
    try:
        with _quiet_zarr():
            return zarr.open_group(store, mode="r", zarr_format=3)
    except Exception as exc:  # zarr and zipfile raise several types for a broken store
        raise InputError(path, f"not a readable Zarr store ({type(exc).__name__}: {exc})") from None


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
    root = open_root(path)
    with _quiet_zarr():
        sizes = []
        for _, group in root.groups():
            size = group.attrs.get("size")
            if size is not None:
                sizes.append((int(size[0]), int(size[1])))
    return sizes
