"""Stream a repository archive (GitHub codeload ``.tar.gz``) member by member, safely.

Nothing is extracted to disk: the archive is read once, front to back, from local disk, ``gs://``
or ``https://`` (opened by ``http_fetch.Fetcher``: timeouts, the token, failures classified as
transient or permanent; the caller retries a whole archive), its gzip stream decompressed here in bounded steps and its tar
headers parsed by tarfile in stream mode. Member names are never used as filesystem paths, yet
links, devices, absolute names and ``..`` are still rejected so the corpus never contains them.

Every archive ends in exactly one way: complete, or an ``ArchiveError`` whose reason is counted.
Nothing a hostile archive holds can make the read unbounded:

- declared sizes: the sum over all members (``max_archive_bytes``) and their count
  (``max_members``) are checked at each header, before any data is read; a file over
  ``max_file_bytes`` is skipped unread (its bytes are still decompressed, to reach the next header,
  under the guards below);
- header extensions: a GNU long name/link (``L``/``K``) or PAX (``x``/``g``) header larger than
  ``max_header_bytes`` (or a chain of them before one member adding up to more) is
  ``archive_bad_header`` before its data is read, as are GNU sparse maps that are not bounded;
- work: the decompressed bytes (``max_stream_bytes``, which also bounds the compressed bytes read),
  the ratio decompressed:compressed once past ``ratio_floor_bytes`` (``max_ratio``, else
  ``archive_bomb``) and the time spent reading (``max_seconds``, else ``archive_timeout``) are
  checked at every step of at most 64 KiB;
- completeness: an archive is complete only when the tar's end-of-archive marker (two zero blocks)
  was read and its gzip stream ended with a valid CRC32 and ISIZE. A stream or a tar that ends
  early is ``archive_truncated``; a bad checksum, damaged data or any byte after the end of the
  gzip stream (garbage, or a second gzip stream: codeload writes one) is ``archive_corrupt``.

Memory: one file's data (``max_file_bytes``), one member's header extensions
(``max_header_bytes``) and a few 64 KiB buffers; see README.md for the measured bound.
"""

from __future__ import annotations

import dataclasses
import tarfile
from typing import Iterator, Optional

from schemas.files import HashingReader
from transforms.sources.gzip_stream import STEP, GzipStream, StreamError, WorkGuard
from transforms.sources.http_fetch import Fetcher, FetchError, FetchPolicy

LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING")
_EXTENSION_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                    tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_MAX_EXTENSIONS = 8  # extension headers before one member (tar writes at most a few)
_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)


class ArchiveError(FetchError):
    """The archive cannot be opened, or is corrupt, truncated or over its limits; ``transient`` when
    reading it again from the start may work (see http_fetch)."""


@dataclasses.dataclass(frozen=True)
class ArchiveLimits:
    max_file_bytes: int = 1 << 20
    max_archive_bytes: int = 4 << 30  # sum of the declared sizes of all members
    max_members: int = 1_000_000
    max_header_bytes: int = 64 << 10  # GNU long name/link and PAX data before one member
    max_ratio: int = 100  # decompressed bytes per compressed byte, once past ratio_floor_bytes
    ratio_floor_bytes: int = 64 << 20
    max_stream_bytes: int = 8 << 30  # decompressed (and compressed) bytes read from one archive
    max_seconds: float = 600.0  # time spent reading one archive, its consumer's time not counted


@dataclasses.dataclass(frozen=True)
class Member:
    """A regular file that passed the name checks (data set), or a skipped member (reason set)."""

    path: str  # inside the archive, without the top-level folder ("" when there is none)
    data: Optional[bytes] = None
    reason: Optional[str] = None
    detail: str = ""


class _TarState:
    """What the guarded header parser saw: the end-of-archive block, the extension headers."""

    def __init__(self, limits: ArchiveLimits):
        self.limits = limits
        self.end = False
        self.extension_bytes = 0
        self.extensions = 0


class _GuardedTarInfo(tarfile.TarInfo):
    """tarfile's header parsing, guarded where tarfile trusts the archive.

    ``fromtarfile`` is tarfile's own four lines plus: a zero block is remembered as the end marker
    (tarfile stops there silently, as it does at a missing or broken header: those become
    ``archive_truncated`` / ``archive_corrupt`` here), and an extension header's declared size is
    checked before tarfile reads its data whole. GNU sparse maps that tarfile would read block by
    block without a bound (old-style extended sparse headers, PAX sparse 1.0) are refused; codeload
    never writes sparse members. A per-archive subclass carries ``_state``.
    """

    _state: _TarState

    @classmethod
    def fromtarfile(cls, tar):
        state = cls._state
        buf = tar.fileobj.read(tarfile.BLOCKSIZE)
        state.end = buf == _ZERO_BLOCK
        try:
            obj = cls.frombuf(buf, tar.encoding, tar.errors)
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError):
            raise ArchiveError("archive_truncated",
                               "the tar ends without its end-of-archive marker") from None
        except tarfile.InvalidHeaderError as err:
            raise ArchiveError("archive_corrupt", f"tar header: {err}") from None
        obj.offset = tar.fileobj.tell() - tarfile.BLOCKSIZE
        if obj.type in _EXTENSION_TYPES:
            state.extensions += 1
            state.extension_bytes += max(obj.size, 0)
            limit = state.limits.max_header_bytes
            if state.extension_bytes > limit or state.extensions > _MAX_EXTENSIONS:
                kind = obj.type.decode("latin-1")
                raise ArchiveError("archive_bad_header", f"{kind!r} header extensions of "
                                   f"{state.extension_bytes} bytes in {state.extensions} headers, "
                                   f"over {limit} bytes or {_MAX_EXTENSIONS} headers")
        else:
            state.extensions = state.extension_bytes = 0
        try:
            return obj._proc_member(tar)
        except tarfile.HeaderError as err:  # a bad PAX record, or a bad header after an extension
            raise ArchiveError("archive_corrupt", f"tar header: {err}") from None

    def _proc_sparse(self, tar):
        if self._sparse_structs[1]:
            raise ArchiveError("archive_bad_header", f"{self.name}: GNU extended sparse header")
        return super()._proc_sparse(tar)

    def _proc_gnusparse_10(self, next, pax_headers, tar):
        raise ArchiveError("archive_bad_header", f"{next.name}: PAX sparse map 1.0")


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


class _MemberReader:
    """Turns the tar's headers into Members in archive order, enforcing the per-archive counts."""

    def __init__(self, tar, limits: ArchiveLimits, report: ArchiveReport, want):
        self._tar = tar
        self._limits = limits
        self._report = report
        self._want = want
        self._declared = 0
        self._top = None

    def next_info(self):
        info = self._tar.next()
        self._tar.members.clear()  # stream mode keeps every member's TarInfo otherwise
        if info is None:
            return None
        self._report.members += 1
        self._declared += max(info.size, 0)
        if self._report.members > self._limits.max_members:
            raise ArchiveError("archive_too_many_members", f"over {self._limits.max_members}")
        if self._declared > self._limits.max_archive_bytes:
            raise ArchiveError("archive_too_large", f"over {self._limits.max_archive_bytes} bytes")
        return info

    def member(self, info) -> Optional[Member]:
        """The file ``info`` as a Member (its data, or why it is refused); None when not wanted."""
        path, reason, detail = _classify(info)
        if reason is None:
            first = info.name.split("/", 1)[0]
            if self._top is None:
                self._top = first
            elif first != self._top:
                path, reason, detail = info.name, "outside_top_level", info.name
        if reason is not None:
            return Member(path=path, reason=reason, detail=detail)
        if self._want is not None and not self._want(path):
            return None
        if info.size > self._limits.max_file_bytes:
            return Member(path=path, reason="too_large", detail=f"{info.size} bytes")
        handle = self._tar.extractfile(info)
        data = handle.read(info.size) if handle is not None else b""
        if len(data) != info.size:
            raise ArchiveError("archive_truncated", f"{path}: {len(data)} of {info.size} bytes")
        return Member(path=path, data=data)


def _check_end(tar, state: _TarState, stream: GzipStream) -> None:
    """The tar ended with its two zero blocks, and the gzip stream after them with valid checksums."""
    if not state.end:  # tarfile stopped at a header without saying why
        raise ArchiveError("archive_corrupt", "the tar stops at a header that cannot be read")
    second = tar.fileobj.read(tarfile.BLOCKSIZE)
    if second != _ZERO_BLOCK:
        raise ArchiveError("archive_truncated" if len(second) < tarfile.BLOCKSIZE else "archive_corrupt",
                           "the tar's end-of-archive marker is not two zero blocks")
    # The rest of the stream (tar record padding, anything after the marker, the gzip trailer)
    # is read so the checksums are checked and the fingerprint covers the whole file.
    stream.finish()


def _open(url: str, fetcher: Fetcher):
    try:
        return fetcher.open(url)
    except FetchError as err:
        raise ArchiveError(err.reason, err.detail, err.transient, err.retry_after) from None


def iter_members(url: str, limits: ArchiveLimits, report: Optional[ArchiveReport] = None,
                 want=None, fetcher: Optional[Fetcher] = None) -> Iterator[Member]:
    """Yield the archive's members in archive order; raise ArchiveError unless it is complete.

    Returning normally means the archive is complete (see the module docstring). Members yielded
    before an error were read in full, but the archive they came from is not whole: the caller
    decides what to keep. ``want(path)`` may return False to skip reading a file's data (it is then
    not yielded). ``fetcher`` opens the URL (default: no token, default timeouts); one call is one
    attempt, and a transient ArchiveError means the caller may read the archive again from its start.
    """
    report = report if report is not None else ArchiveReport()
    guard = WorkGuard(limits)
    raw = _open(url, fetcher or Fetcher(FetchPolicy()))
    hasher = HashingReader(raw)
    stream = GzipStream(hasher, guard)
    state = _TarState(limits)
    info_class = type("_ArchiveTarInfo", (_GuardedTarInfo,), {"_state": state})
    try:
        tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=info_class, bufsize=STEP)
        reader = _MemberReader(tar, limits, report, want)
        while (info := reader.next_info()) is not None:
            member = None if info.isdir() else reader.member(info)
            if member is None:
                continue
            guard.pause()
            yield member
            guard.resume()
        _check_end(tar, state, stream)
    except ArchiveError:
        raise
    except FetchError as err:  # the body failed mid-read (a reset, a stall, cut short)
        raise ArchiveError(err.reason, err.detail, err.transient, err.retry_after) from None
    except StreamError as err:
        raise ArchiveError(err.reason, err.detail) from None
    except (tarfile.ReadError, EOFError) as err:
        # tarfile's "unexpected end of data": when the gzip stream ended intact, the tar in it is short.
        reason = "archive_truncated" if stream.ended else "archive_corrupt"
        raise ArchiveError(reason, f"{type(err).__name__}: {err}") from None
    except (tarfile.TarError, OSError, ValueError, OverflowError) as err:
        raise ArchiveError("archive_corrupt", f"{type(err).__name__}: {err}") from None
    finally:
        raw.close()
        report.sha256 = hasher.digest.hexdigest()
        report.compressed_bytes = hasher.size


def is_license_file(path: str) -> bool:
    """A top-level LICENSE*, LICENCE* or COPYING* file (e.g. LICENSE, LICENSE.txt, LICENSE-MIT)."""
    return "/" not in path and path.upper().startswith(LICENSE_PREFIXES)


def iter_license_files(url: str, max_license_bytes: int, fetcher: Optional[Fetcher] = None,
                       on_retry=lambda err: None) -> list[tuple[str, str]]:
    """(name, text) of the archive's top-level license files, in name order; a transient failure
    reads the archive again from its start (``fetcher``'s retries, each told to ``on_retry``)."""
    limits = ArchiveLimits(max_file_bytes=max_license_bytes)
    fetcher = fetcher or Fetcher(FetchPolicy())

    def attempt():
        found = []
        for member in iter_members(url, limits, want=is_license_file, fetcher=fetcher):
            if member.data is not None:
                found.append((member.path, member.data.decode("utf-8", errors="replace")))
        return sorted(found)

    return fetcher.retrying(attempt, on_retry)
