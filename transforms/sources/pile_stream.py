"""Stream a Pile file's lines: decompressed in small pieces, split into bounded lines.

The reader decompresses each file itself instead of letting the filesystem layer do it: only then
can it tell a damaged file (truncated, corrupt) from a short one, and say how many lines it read
before the damage. A release shard is ~15 GB compressed, so nothing holds a file: compressed input
is fed in small pieces and lines are split from bounded chunks, one line in memory at a time.
"""

from __future__ import annotations

import zlib

_CHUNK_BYTES = 1 << 20
# Compressed data is fed 16 KiB at a time. zstd's decompressobj returns all the output of its
# input, so even a crafted frame (ratio ~32,000) yields at most ~0.5 GiB per call (real text:
# ~64 KiB); zlib's output is bounded by _CHUNK_BYTES.
_INPUT_BYTES = 16 << 10
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer (CRC and size checked)
_ZSTD_MAX_WINDOW = 1 << 31  # frames written with ``zstd --long`` need more than the default 128 MiB


class CountingReader:
    """A raw file that counts the bytes read from it."""

    def __init__(self, handle):
        self._handle = handle
        self.bytes_read = 0

    def read(self, size=-1):
        data = self._handle.read(size)
        self.bytes_read += len(data)
        return data


class Damage(Exception):
    """Raised by the chunk readers when the compressed stream is truncated or corrupt."""


def _zstd_chunks(raw):
    dctx = _zstd().ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    dobj, in_frame = dctx.decompressobj(), False
    while True:
        data = raw.read(_INPUT_BYTES)
        if not data:
            break
        while data:
            try:
                out = dobj.decompress(data)
            except _zstd().ZstdError as err:
                raise Damage(f"corrupt zstd data ({err})") from None
            in_frame = True
            if out:
                yield out
            if dobj.eof:  # a frame ended: the rest of the piece starts the next one
                data, dobj, in_frame = dobj.unused_data, dctx.decompressobj(), False
            else:
                data = b""
    if in_frame:
        raise Damage("truncated zstd data (the file ends inside a frame)")


def _zstd():
    import zstandard

    return zstandard


def _gzip_chunks(raw):
    # zlib rather than GzipFile: GzipFile.read raises on damage without the data before it.
    dobj, in_member = zlib.decompressobj(_GZIP_WBITS), False
    while True:
        data = raw.read(_INPUT_BYTES)
        if not data:
            break
        while data:
            try:
                out = dobj.decompress(data, _CHUNK_BYTES)
            except zlib.error as err:
                raise Damage(f"corrupt gzip data ({err})") from None
            in_member = True
            if out:
                yield out
            if dobj.eof:  # a member ended: the rest of the input starts the next one
                data, dobj, in_member = dobj.unused_data, zlib.decompressobj(_GZIP_WBITS), False
            else:
                data = dobj.unconsumed_tail
    if in_member:
        out = dobj.flush()  # output zlib held back for the max_length bound
        if out:
            yield out
        if not dobj.eof:
            raise Damage("truncated gzip data (the file ends inside a member)")


def _plain_chunks(raw):
    while True:
        out = raw.read(_CHUNK_BYTES)
        if not out:
            return
        yield out


def decompressed_chunks(raw, compression: str):
    """Bounded chunks of a raw file's content; raises Damage where the compressed data breaks.

    ``raw`` is a CountingReader: an empty compressed file (an aborted download) is damaged too.
    """
    yield from {"zstd": _zstd_chunks, "gzip": _gzip_chunks, "none": _plain_chunks}[compression](raw)
    if compression != "none" and raw.bytes_read == 0:
        raise Damage(f"empty file (no {compression} data)")


def iter_lines(chunks, max_line_bytes: int):
    """``(line, size)`` per line, newline excluded; ``line`` is None when size > max_line_bytes.

    A last line without a newline is a line too. Lines are yielded only once complete, so a
    damaged stream (an exception from ``chunks``) never yields the piece of line before it.
    """
    parts, size = [], 0
    for chunk in chunks:
        pieces = chunk.split(b"\n")
        for piece in pieces[:-1]:
            size += len(piece)
            if size > max_line_bytes:
                yield None, size
            else:
                yield (b"".join(parts) + piece if parts else piece), size
            parts, size = [], 0
        tail = pieces[-1]
        if tail:
            size += len(tail)
            if size <= max_line_bytes:
                parts.append(tail)
            else:
                parts = []
    if size:
        yield (None if size > max_line_bytes else b"".join(parts)), size
