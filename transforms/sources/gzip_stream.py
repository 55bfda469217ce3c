"""One gzip stream read under work limits: how an archive is decompressed without trusting it.

``GzipStream`` gives the decompressed bytes of exactly one gzip stream in bounded steps, checking
its CRC32 and length at the end; ``WorkGuard`` stops the work when the bytes read, the
decompression ratio or the time spent pass the archive's limits. Both raise ``StreamError`` with
the reject reason (``archive_too_large``, ``archive_bomb``, ``archive_timeout``,
``archive_truncated``, ``archive_corrupt``); ``archive_stream`` reports it as that archive's reject.
"""

from __future__ import annotations

import time
import zlib

from schemas.files import HashingReader

STEP = 1 << 16  # the most bytes read, or decompressed, between two checks of the guards


class StreamError(Exception):
    """The stream broke a limit or is damaged: ``reason`` is the reject reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class WorkGuard:
    """The work limits of one archive: bytes read, decompression ratio, time.

    The clock runs only while the archive is being read: ``iter_members`` pauses it while its
    caller holds a member, so a slow consumer does not time the archive out.
    """

    def __init__(self, limits):
        self._limits = limits
        self._spent = 0.0
        self._since = time.monotonic()

    def pause(self) -> None:
        self._spent += time.monotonic() - self._since

    def resume(self) -> None:
        self._since = time.monotonic()

    def check(self, compressed: int, decompressed: int) -> None:
        limits = self._limits
        if max(compressed, decompressed) > limits.max_stream_bytes:
            raise StreamError("archive_too_large", f"over {limits.max_stream_bytes} bytes read "
                               f"({compressed} compressed, {decompressed} decompressed)")
        if decompressed > limits.ratio_floor_bytes and decompressed > limits.max_ratio * compressed:
            raise StreamError("archive_bomb", f"{decompressed} bytes from {compressed} compressed, "
                               f"over {limits.max_ratio}:1")
        spent = self._spent + time.monotonic() - self._since
        if spent > limits.max_seconds:
            raise StreamError("archive_timeout", f"over {limits.max_seconds:g} s reading")


class GzipStream:
    """The decompressed bytes of the archive's one gzip stream, in steps of at most ``STEP``.

    Hand-written over ``zlib.decompressobj(wbits=31)`` (the gzip header, CRC32 and ISIZE checked by
    zlib) rather than ``gzip.GzipFile`` or tarfile's ``r|gz``, because those read on after the end
    of the stream (a second gzip member, or trailing zeros skipped silently), and neither lets the
    guards see the compressed and decompressed counts at every step. ``unconsumed_tail`` keeps
    each step's output at most ``STEP`` bytes, so a bomb never inflates a buffer.
    """

    def __init__(self, raw: HashingReader, guard: WorkGuard):
        self._raw = raw
        self._guard = guard
        self._zlib = zlib.decompressobj(wbits=31)
        self._input = b""
        self.decompressed = 0

    @property
    def ended(self) -> bool:
        """The gzip stream reached its end and its checksums matched."""
        return self._zlib.eof

    def read(self, size: int = STEP) -> bytes:
        """Up to ``size`` bytes, at least one unless the stream ended; never past its end."""
        while not self._zlib.eof:
            if not self._input:
                # Reads grow from 512 bytes to STEP, so an archive refused at its first
                # headers costs little more than those headers.
                self._input = self._raw.read(min(STEP, max(512, self._raw.size)))
                if not self._input:
                    raise StreamError("archive_truncated", "the gzip stream ends before its trailer")
            try:
                data = self._zlib.decompress(self._input, max(1, min(size, STEP)))
            except zlib.error as err:
                raise StreamError("archive_corrupt", f"gzip: {err}") from None
            self._input = self._zlib.unconsumed_tail
            self.decompressed += len(data)
            consumed = self._raw.size - len(self._input) - len(self._zlib.unused_data)
            self._guard.check(consumed, self.decompressed)
            if data:
                return data
        return b""

    def finish(self) -> None:
        """Read to the end of the stream (tar padding, the trailer); nothing may follow it."""
        while self.read():
            pass
        if self._zlib.unused_data or self._raw.read(1):
            raise StreamError("archive_corrupt", "data after the end of the gzip stream")
