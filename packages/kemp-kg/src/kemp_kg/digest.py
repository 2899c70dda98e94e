"""File digests: the one place kemp-kg reads a file to checksum it.

Two algorithms, each where it fits (docs/DESIGN.md §4, "Checksums"):

* ``sha256``: what is verified against a published, pinned value (``kemp-kg download``) and what
  a graph file records about its (small) dialogue inputs;
* ``xxh3_128`` (XXH3, 128 bits, the ``xxhash`` package): the identity of a knowledge source in an
  index manifest. A ConceptNet dump is gigabytes; SHA-256 costs about as much CPU as DuckDB's
  whole scan of it (1.2 vs 1.3 CPU-s on the 5.9M-row benchmark dump), XXH3 a fifth of that,
  mostly the read itself. The manifest digest is a change detector (is this the file the index was
  built from?), not a defence against a crafted collision: the place where integrity against a
  third party matters, the download, stays SHA-256.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import xxhash

#: Algorithm name -> a constructor of a hashlib-like object (``update``, ``hexdigest``).
ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "xxh3_128": xxhash.xxh3_128,
}

#: Bytes read at a time (one reusable buffer; both hashers release the GIL on large blocks).
CHUNK_BYTES = 1 << 22


def new_digest(algorithm: str) -> Any:
    """A fresh hasher for ``algorithm`` (a key of :data:`ALGORITHMS`)."""
    try:
        return ALGORITHMS[algorithm]()
    except KeyError:
        raise ValueError(f"unknown digest {algorithm!r}; known: {', '.join(ALGORITHMS)}") from None


def file_digest(
    path: str | os.PathLike[str], algorithm: str = "sha256", *, chunk_bytes: int = CHUNK_BYTES
) -> str:
    """The hex digest of a file's bytes, read in ``chunk_bytes`` blocks into one buffer.

    Raises:
        OSError: the file cannot be read (callers turn it into their own one-line error).
        ValueError: unknown ``algorithm``.
    """
    digest = new_digest(algorithm)
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while size := handle.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """:func:`file_digest` with SHA-256."""
    return file_digest(path, "sha256")


__all__ = ["ALGORITHMS", "CHUNK_BYTES", "file_digest", "new_digest", "sha256_file"]
