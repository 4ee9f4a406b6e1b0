"""Stable assignment of image ids to shards.

An image's shard is a hash of its id, never its position in a list, so adding or removing an image changes
the inputs of exactly one shard and only that shard's jobs run again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def shard_of(image_id: str, n_shards: int) -> int:
    digest = hashlib.blake2b(image_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_shards


def split_into_shards(image_ids: Iterable[str], n_shards: int) -> list[list[str]]:
    """Return ``n_shards`` lists of ids (sorted within each shard); some may be empty."""
    shards: list[list[str]] = [[] for _ in range(n_shards)]
    for image_id in sorted(set(image_ids)):
        shards[shard_of(image_id, n_shards)].append(image_id)
    return shards
