"""Hostile and broken archives, built for real in tmp_path: header-extension bombs, decompression
bombs, archives cut short or damaged, streams that never end. Each is a counted reject with its
reason, after bounded time and memory (README.md, "Archive limits")."""

from __future__ import annotations

import gzip
import io
import os
import struct
import subprocess
import sys
import tarfile
import time
import tracemalloc
import zlib
from pathlib import Path

import fsspec
import pytest

from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, ArchiveReport, iter_members

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "samples" / "mono" / "archives" / "click-8.1.7.tar.gz"
MIB = 1 << 20
LIMITS = ArchiveLimits()
# The documented bound (README.md): reading a header or decompression bomb allocates at most this
# much (Python allocations, tracemalloc) with the default limits.
BOMB_MEMORY_BOUND = 2 * MIB
BOMB_SECONDS = 10  # generous for a shared CI machine; measured well under a second


def _deflate(data: bytes, final: bool = False) -> bytes:
    """Raw deflate of data, flushed to a byte boundary with the history reset (or finished)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def gzip_repeating(prefix: bytes, chunk: bytes, count: int, suffix: bytes) -> bytes:
    """A valid gzip stream of prefix + chunk * count + suffix, built without compressing it all.

    A full flush resets the compressor, so one chunk compresses to the same bytes wherever it
    stands: a 512 MiB stream of one repeated MiB costs one MiB of compression to build.
    """
    block = _deflate(chunk)
    crc = zlib.crc32(prefix)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(suffix, crc)
    size = len(prefix) + len(chunk) * count + len(suffix)
    return b"".join([b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff", _deflate(prefix), block * count,
                     _deflate(suffix, final=True), struct.pack("<II", crc, size & 0xFFFFFFFF)])


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE, fmt=tarfile.USTAR_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=fmt)


def _file(name: str, data: bytes) -> bytes:
    return _header(name, len(data)) + data + bytes(-len(data) % 512)


END = bytes(1024)


def _measure(path, limits=LIMITS, **kw):
    """(ArchiveError, seconds, peak bytes allocated) of reading path to its end."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ArchiveError) as err:
            list(iter_members(str(path), limits, **kw))
        return err.value, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_repeating_is_a_valid_gzip_stream():
    data = gzip_repeating(b"head", b"0123456789" * 100, 7, b"tail")
    assert gzip.decompress(data) == b"head" + b"0123456789" * 700 + b"tail"


def _long_name_bomb(kind: bytes, size: int) -> bytes:
    """A GNU long-name/long-link header declaring size bytes of name, all present, then a file."""
    prefix = _file("pkg/ok.py", b"ok = 1\n") + _header("././@LongLink", size, kind, tarfile.GNU_FORMAT)
    suffix = b"\0" * (-size % 512) + _file("pkg/x.py", b"x = 1\n") + END
    return gzip_repeating(prefix, b"a" * MIB, size // MIB, suffix)


def _pax_bomb(kind: bytes, size: int) -> bytes:
    """A PAX header holding one ``path`` record of about size bytes, consistent, then a file."""
    body = size - 32
    record_len = len(" path=\n") + body
    record_len += len(str(record_len + len(str(record_len))))
    head = f"{record_len} path=".encode()
    prefix = _file("pkg/ok.py", b"ok = 1\n") + _header("pax", record_len, kind) + head
    suffix = b"\n" + b"\0" * (-record_len % 512) + _file("pkg/x.py", b"x = 1\n") + END
    count, rest = divmod(record_len - len(head) - 1, MIB)
    return gzip_repeating(prefix, b"a" * MIB, count, b"a" * rest + suffix)


@pytest.mark.parametrize("build, kind, size", [
    pytest.param(_long_name_bomb, tarfile.GNUTYPE_LONGNAME, 512 * MIB, id="gnu_long_name_512MiB"),
    pytest.param(_long_name_bomb, tarfile.GNUTYPE_LONGLINK, 8 * MIB, id="gnu_long_link_8MiB"),
    pytest.param(_pax_bomb, tarfile.XHDTYPE, 512 * MIB, id="pax_512MiB"),
    pytest.param(_pax_bomb, tarfile.XGLTYPE, 8 * MIB, id="pax_global_8MiB"),
])
def test_header_extension_bomb_is_bad_header_in_bounded_memory(tmp_path, build, kind, size):
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(build(kind, size))
    assert path.stat().st_size < size / 500  # a 0.5 MB archive declaring a 512 MB name
    err, seconds, peak = _measure(path)
    assert err.reason == "archive_bad_header"
    assert peak < BOMB_MEMORY_BOUND and seconds < BOMB_SECONDS


def test_header_extension_just_under_the_limit_is_read(tmp_path):
    name = "pkg/" + "d" * 1000 + "/x.py"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"x\n"))
    path = tmp_path / "long.tar.gz"
    path.write_bytes(raw.getvalue())
    assert [m.path for m in iter_members(str(path), LIMITS)] == [name[4:]]
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(path), ArchiveLimits(max_header_bytes=1000)))
    assert err.value.reason == "archive_bad_header"


def test_a_chain_of_small_extension_headers_is_bounded(tmp_path):
    # Each long name under the limit, but one member preceded by 100 of them: tarfile would
    # recurse once per header and hold every name.
    chain = b"".join(_header("././@LongLink", 512, tarfile.GNUTYPE_LONGNAME, tarfile.GNU_FORMAT)
                     + b"b" * 511 + b"\0" for _ in range(100))
    path = tmp_path / "chain.tar.gz"
    path.write_bytes(gzip.compress(chain + _file("pkg/x.py", b"x\n") + END))
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(path), LIMITS))
    assert err.value.reason == "archive_bad_header"


def _zeros_bomb(declared: int, where: str) -> bytes:
    """1 GiB of zeros, about 1 MB compressed: in a too-large member, an unwanted one, or after the
    tar's end-of-archive marker."""
    first = _file("pkg/ok.py", b"ok = 1\n")
    if where == "after_end":
        return gzip_repeating(first + END, bytes(MIB), declared // MIB, b"")
    name = "pkg/zeros.py" if where == "too_large" else "pkg/zeros.bin"
    return gzip_repeating(first + _header(name, declared), bytes(MIB), declared // MIB, END)


@pytest.mark.parametrize("where", ["too_large", "unwanted", "after_end"])
def test_zeros_bomb_is_stopped_after_bounded_work_whatever_the_members_fate(tmp_path, where):
    path = tmp_path / "zeros.tar.gz"
    path.write_bytes(_zeros_bomb(1 << 30, where))
    assert path.stat().st_size < 1.1 * MIB
    err, seconds, peak = _measure(path, want=lambda p: p.endswith(".py"))
    assert err.reason == "archive_bomb"
    assert peak < BOMB_MEMORY_BOUND and seconds < BOMB_SECONDS


def test_ratio_guard_spares_a_compressible_archive_under_its_floor(tmp_path):
    path = tmp_path / "zeros.tar.gz"
    path.write_bytes(_zeros_bomb(32 * MIB, "too_large"))
    members = list(iter_members(str(path), LIMITS))
    assert [(m.path, m.reason) for m in members] == [("ok.py", None), ("zeros.py", "too_large")]
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(path), ArchiveLimits(ratio_floor_bytes=8 * MIB)))
    assert err.value.reason == "archive_bomb"
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(path), ArchiveLimits(max_stream_bytes=16 * MIB)))
    assert err.value.reason == "archive_too_large"


def _tar_of_sample() -> tuple[bytes, list[int]]:
    """The sample archive's tar bytes, and the offset of every member header after the first."""
    tar_bytes = gzip.decompress(SAMPLE.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        offsets = [m.offset for m in tar.getmembers()]
    return tar_bytes, offsets[1:]


@pytest.mark.parametrize("extra", [b"", bytes(512)], ids=["no_marker", "one_zero_block"])
def test_tar_cut_at_a_header_boundary_is_truncated(tmp_path, extra):
    # A truncated tar re-compressed: a valid gzip stream whose tar lacks its end-of-archive marker.
    tar_bytes, offsets = _tar_of_sample()
    cut = offsets[len(offsets) // 2]
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(gzip.compress(tar_bytes[:cut] + extra))
    got = []
    with pytest.raises(ArchiveError) as err:
        for member in iter_members(str(path), LIMITS):
            got.append(member)
    assert err.value.reason == "archive_truncated"
    assert 0 < len(got) < len(list(iter_members(str(SAMPLE), LIMITS)))


def _sample_with(edit) -> bytes:
    data = bytearray(SAMPLE.read_bytes())
    edit(data)
    return bytes(data)


def _flip(index):
    def edit(data):
        data[index] ^= 0x01
    return edit


@pytest.mark.parametrize("data, reason", [
    pytest.param(lambda: _sample_with(_flip(-8)), "archive_corrupt", id="bad_crc32"),
    pytest.param(lambda: _sample_with(_flip(-4)), "archive_corrupt", id="bad_isize"),
    pytest.param(lambda: SAMPLE.read_bytes()[:-8], "archive_truncated", id="no_gzip_trailer"),
    pytest.param(lambda: SAMPLE.read_bytes()[:-1], "archive_truncated", id="trailer_cut"),
    pytest.param(lambda: SAMPLE.read_bytes() + b"garbage", "archive_corrupt", id="trailing_garbage"),
    pytest.param(lambda: SAMPLE.read_bytes() + bytes(4096), "archive_corrupt", id="trailing_zeros"),
    pytest.param(lambda: SAMPLE.read_bytes() + gzip.compress(b"more"), "archive_corrupt",
                 id="second_gzip_stream"),
])
def test_archive_is_complete_only_with_a_whole_gzip_stream(tmp_path, data, reason):
    path = tmp_path / "damaged.tar.gz"
    path.write_bytes(data())
    report = ArchiveReport()
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(path), LIMITS, report))
    assert err.value.reason == reason
    # Reading stopped at the end of the gzip stream: at most one chunk past it was looked at.
    assert report.compressed_bytes <= SAMPLE.stat().st_size + (1 << 16)


def test_dev_zero_is_a_reject_not_a_hang():
    # In a child process so that the old behaviour (reading /dev/zero forever) fails, not hangs.
    code = ("from transforms.sources.archive_stream import *\n"
            "try:\n    list(iter_members('/dev/zero', ArchiveLimits()))\n"
            "except ArchiveError as err:\n    print(err.reason)\n")
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    except subprocess.TimeoutExpired:
        pytest.fail("reading /dev/zero did not end")
    assert done.stdout.strip() == "archive_corrupt", done.stderr
    assert time.perf_counter() - start < 60


class _EndlessGzip:
    """An archive file that never ends: a gzip stream holding a tar header of a large member,
    then incompressible bytes for as long as anyone reads (a stalled or hostile server)."""

    def __init__(self):
        self._compressor = zlib.compressobj(0, zlib.DEFLATED, 31)  # stored blocks: ratio about 1
        self._noise = os.urandom(MIB)
        self._buffer = self._compressor.compress(_header("pkg/big.bin", 1 << 30))

    def open(self):  # fsspec.open(...).open()
        return self

    def read(self, size=-1):
        while len(self._buffer) < size:
            self._buffer += self._compressor.compress(self._noise)
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    def close(self):
        pass


@pytest.mark.parametrize("limits, reason", [
    (ArchiveLimits(max_seconds=1.0), "archive_timeout"),
    (ArchiveLimits(max_stream_bytes=64 * MIB), "archive_too_large"),
])
def test_a_stream_that_never_ends_is_bounded(monkeypatch, limits, reason):
    monkeypatch.setattr(fsspec, "open", lambda url, mode: _EndlessGzip())
    start = time.perf_counter()
    with pytest.raises(ArchiveError) as err:
        list(iter_members("gs://example-bucket/endless.tar.gz", limits))
    assert err.value.reason == reason
    assert time.perf_counter() - start < BOMB_SECONDS


def test_time_is_counted_only_while_reading(tmp_path):
    path = tmp_path / "slow_consumer.tar.gz"
    path.write_bytes(gzip.compress(_file("pkg/a.py", b"a\n") + _file("pkg/b.py", b"b\n") + END))
    got = []
    for member in iter_members(str(path), ArchiveLimits(max_seconds=0.2)):
        time.sleep(0.15)  # the consumer's time, 0.3 s in all, is not the archive's
        got.append(member.path)
    assert got == ["a.py", "b.py"]


def _pax_records(**records) -> bytes:
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = len(body) + len(str(len(body)))
        length = len(body) + len(str(length))
        out += str(length).encode() + body
    return out


def _pax(data: bytes) -> bytes:
    return _header("pax", len(data), tarfile.XHDTYPE) + data + bytes(-len(data) % 512)


def _gnu_extended_sparse() -> bytes:
    """An old-style GNU sparse member whose map continues in extension blocks, each saying
    another follows (tarfile would read them without end)."""
    header = bytearray(_header("pkg/s.py", 512, tarfile.GNUTYPE_SPARSE, tarfile.GNU_FORMAT))
    header[482] = 1  # isextended
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % tarfile.calc_chksums(bytes(header))[0]
    extension = bytearray(512)
    extension[504] = 1
    return bytes(header) + bytes(extension) * 50


@pytest.mark.parametrize("tar_bytes, reason", [
    pytest.param(lambda: _file("pkg/a.py", b"x" * 2000)[:1500], "archive_truncated",
                 id="cut_inside_a_member"),
    pytest.param(lambda: _pax(b"0 path=x\n") + _file("pkg/a.py", b"a\n") + END, "archive_corrupt",
                 id="bad_pax_record"),
    pytest.param(lambda: _pax(_pax_records(path="pkg/b.py")) + END, "archive_corrupt",
                 id="pax_then_end_marker"),
    pytest.param(lambda: _file("pkg/a.py", b"a\n") + b"\x01" * 512 + END, "archive_corrupt",
                 id="garbage_header"),
    pytest.param(lambda: _gnu_extended_sparse() + END, "archive_bad_header", id="gnu_extended_sparse"),
    pytest.param(lambda: _pax(_pax_records(**{"GNU.sparse.major": 1, "GNU.sparse.minor": 0,
                                              "GNU.sparse.name": "pkg/s.py"}))
                 + _header("pkg/GNUSparseFile.0/s.py", 512) + b"9" * 512 + END, "archive_bad_header",
                 id="pax_sparse_1_0"),
])
def test_broken_tar_in_an_intact_gzip_stream(tmp_path, tar_bytes, reason):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(gzip.compress(tar_bytes()))
    with pytest.raises(ArchiveError) as err:
        list(iter_members(str(path), LIMITS))
    assert err.value.reason == reason
