"""TFRecord framing, hand-written.

Why: Beam's ``WriteToTFRecord`` does not let us control record order inside
a shard or name shards, and Sluice needs byte-identical, key-ordered shards.
The format is only four fields per record::

    uint64 length (little-endian)
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)
"""

from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

import google_crc32c

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TFRecord's masked crc32c (rotate right 15 bits, add a constant)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def write_record(fileobj: BinaryIO, data: bytes) -> None:
    """Append one framed record to ``fileobj``."""
    length = _U64.pack(len(data))
    fileobj.write(length + _U32.pack(masked_crc(length)))
    fileobj.write(data)
    fileobj.write(_U32.pack(masked_crc(data)))


def _read_exact(fileobj: BinaryIO, n: int, what: str, index: int) -> bytes:
    buf = fileobj.read(n)
    if len(buf) != n:
        raise ValueError(
            f"truncated TFRecord: record {index} {what} needs {n} bytes, got {len(buf)}")
    return buf


def read_records(fileobj: BinaryIO, verify: bool = True) -> Iterator[bytes]:
    """Yield record payloads; raise ``ValueError`` on truncation or crc mismatch."""
    index = 0
    while True:
        header = fileobj.read(12)
        if not header:
            return
        if len(header) != 12:
            raise ValueError(
                f"truncated TFRecord: record {index} header needs 12 bytes, got {len(header)}")
        (length,) = _U64.unpack_from(header)
        if verify and _U32.unpack_from(header, 8)[0] != masked_crc(header[:8]):
            raise ValueError(f"TFRecord length crc mismatch at record {index}")
        data = _read_exact(fileobj, length, "data", index)
        (crc,) = _U32.unpack(_read_exact(fileobj, 4, "data crc", index))
        if verify and crc != masked_crc(data):
            raise ValueError(f"TFRecord data crc mismatch at record {index}")
        yield data
        index += 1
