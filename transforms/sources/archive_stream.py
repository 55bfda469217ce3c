"""Stream a repository archive (GitHub codeload ``.tar.gz``) member by member, safely.

Nothing is extracted to disk: tarfile runs in stream mode (``r|*``) over an fsspec file, so an
archive is read once, front to back, from local disk, ``gs://`` or ``https://``. Member names are
never used as filesystem paths, yet links, devices, absolute names and ``..`` are still rejected
so the corpus never contains them. A bomb is stopped before it costs time: the declared sizes of
all members and their count are bounded, and a file over the size limit is skipped unread.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import tarfile
import zlib
from typing import Iterator, Optional

import fsspec

LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING")


class ArchiveError(Exception):
    """The archive cannot be opened, or is corrupt, truncated or over its limits."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    max_file_bytes: int = 1 << 20
    max_archive_bytes: int = 4 << 30  # sum of the declared sizes of all members
    max_members: int = 1_000_000


@dataclasses.dataclass(frozen=True)
class Member:
    """A regular file that passed the name checks (data set), or a skipped member (reason set)."""

    path: str  # inside the archive, without the top-level folder ("" when there is none)
    data: Optional[bytes] = None
    reason: Optional[str] = None
    detail: str = ""


class _HashingReader:
    """Read-through wrapper that hashes the compressed bytes: the archive's fingerprint for free."""

    def __init__(self, raw):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size=-1):
        chunk = self._raw.read(size)
        self.sha256.update(chunk)
        self.bytes_read += len(chunk)
        return chunk


def _classify(info: tarfile.TarInfo) -> tuple[str, Optional[str], str]:
    """(path without top folder, skip reason or None, detail) for one tar member."""
    name = info.name
    parts = name.split("/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return name, "absolute_path", name
    if ".." in parts:
        return name, "path_traversal", name
    if info.issym() or info.islnk():
        return name, "link", f"{name} -> {info.linkname}"
    if info.ischr() or info.isblk() or info.isfifo() or info.isdev():
        return name, "device", name
    if not info.isreg():
        return name, "not_a_file", name
    inner = "/".join(p for p in parts[1:] if p not in ("", "."))
    if not inner:
        return name, "outside_top_level", name
    return inner, None, ""


@dataclasses.dataclass
class ArchiveReport:
    """Filled while streaming: the fingerprint of what was read."""

    sha256: str = ""
    compressed_bytes: int = 0
    members: int = 0


def iter_members(url: str, limits: ArchiveLimits, report: Optional[ArchiveReport] = None,
                 want=None) -> Iterator[Member]:
    """Yield the archive's members in archive order; raise ArchiveError when the archive breaks.

    Members yielded before an error were read in full and are intact; the caller decides what to
    keep. ``want(path)`` may return False to skip reading a file's data (it is then not yielded).
    """
    report = report if report is not None else ArchiveReport()
    try:
        raw = fsspec.open(url, "rb").open()
    except (OSError, ValueError) as err:
        raise ArchiveError("archive_unreadable", f"{type(err).__name__}: {err}") from None
    hasher = _HashingReader(raw)
    declared = 0
    top = None
    try:
        with tarfile.open(fileobj=hasher, mode="r|*") as tar:
            for info in tar:
                report.members += 1
                declared += max(info.size, 0)
                if report.members > limits.max_members:
                    raise ArchiveError("archive_too_many_members", f"over {limits.max_members}")
                if declared > limits.max_archive_bytes:
                    raise ArchiveError("archive_too_large", f"over {limits.max_archive_bytes} bytes")
                if info.isdir():
                    continue
                path, reason, detail = _classify(info)
                if reason is None:
                    first = info.name.split("/", 1)[0]
                    if top is None:
                        top = first
                    elif first != top:
                        path, reason, detail = info.name, "outside_top_level", info.name
                if reason is not None:
                    yield Member(path=path, reason=reason, detail=detail)
                    continue
                if want is not None and not want(path):
                    continue
                if info.size > limits.max_file_bytes:
                    yield Member(path=path, reason="too_large", detail=f"{info.size} bytes")
                    continue
                handle = tar.extractfile(info)
                data = handle.read(info.size) if handle is not None else b""
                if len(data) != info.size:
                    raise ArchiveError("archive_truncated", f"{path}: {len(data)} of {info.size} bytes")
                yield Member(path=path, data=data)
            # tarfile stops at the end-of-archive marker; read the rest (padding, the gzip
            # trailer) so the fingerprint covers the whole file.
            while hasher.read(1 << 20):
                pass
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as err:
        raise ArchiveError("archive_corrupt", f"{type(err).__name__}: {err}") from None
    finally:
        raw.close()
        report.sha256 = hasher.sha256.hexdigest()
        report.compressed_bytes = hasher.bytes_read


def is_license_file(path: str) -> bool:
    """A top-level LICENSE*, LICENCE* or COPYING* file (e.g. LICENSE, LICENSE.txt, LICENSE-MIT)."""
    return "/" not in path and path.upper().startswith(LICENSE_PREFIXES)


def iter_license_files(url: str, max_license_bytes: int) -> list[tuple[str, str]]:
    """(name, text) of the archive's top-level license files, in name order."""
    limits = ArchiveLimits(max_file_bytes=max_license_bytes)
    found = []
    for member in iter_members(url, limits, want=is_license_file):
        if member.data is not None:
            found.append((member.path, member.data.decode("utf-8", errors="replace")))
    return sorted(found)
