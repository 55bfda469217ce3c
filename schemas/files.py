"""Paths and checksums of published files: one way to name a file in a version folder and one way
to hash it, so a manifest's sha256 and every later check of it agree by construction (no Beam, no
fsspec: any opened binary handle will do)."""

from __future__ import annotations

import hashlib

CHUNK_BYTES = 1 << 20


def join(folder: str, name: str) -> str:
    """``folder/name`` for local paths and URLs alike (``os.path.join`` would mangle ``gs://``)."""
    return f"{folder.rstrip('/')}/{name}"


class HashingReader:
    """A read-only wrapper that hashes and counts every byte read through it, so a parser (record
    counting) and the checksum share one read of the file."""

    def __init__(self, handle):
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> tuple[int, str]:
        """Read what is left; ``(bytes, sha256 hex)`` of everything read through the wrapper."""
        while self.read(CHUNK_BYTES):
            pass
        return self.size, self.digest.hexdigest()


def sha256_of(handle) -> tuple[int, str]:
    """``(bytes, sha256 hex)`` of what is left in an opened binary handle, read in chunks."""
    return HashingReader(handle).drain()
