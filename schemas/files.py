"""Paths and checksums of published files: one way to name a file in a version folder and one way
to hash it, so a manifest's sha256 and every later check of it agree by construction (no Beam, no
fsspec: any opened binary handle will do)."""

from __future__ import annotations

import hashlib
import re
from typing import Optional

CHUNK_BYTES = 1 << 20
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # gs:, file:, c: ...


def join(folder: str, name: str) -> str:
    """``folder/name`` for local paths and URLs alike (``os.path.join`` would mangle ``gs://``)."""
    return f"{folder.rstrip('/')}/{name}"


def relative_problem(name) -> Optional[str]:
    """Why ``name`` is not a plain relative path that stays below the folder it is joined to, or
    None: a manifest names its files this way, and a name that is absolute, a URL, empty or that
    climbs out (``..``) is refused before anything is opened. Links are the reader's to resolve."""
    if not isinstance(name, str):
        return f"is {json_kind(name)}, not a string"
    if not name:
        return "is empty"
    if name.startswith(("/", "\\")):
        return "is absolute"
    if _SCHEME.match(name):
        return "is a URL"
    if "\\" in name or "\0" in name:
        return "holds a backslash or a NUL"
    segments = name.split("/")
    if ".." in segments:
        return "leaves its folder (..)"
    if any(s in ("", ".") for s in segments):
        return "has an empty or '.' segment"
    return None


def json_kind(value) -> str:
    """A JSON value's kind in words, for errors (``an object``, ``a list``, ``null``...)."""
    kinds = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
             (list, "a list"), (dict, "an object"), (type(None), "null"))
    return next((word for kind, word in kinds if isinstance(value, kind)), type(value).__name__)


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
