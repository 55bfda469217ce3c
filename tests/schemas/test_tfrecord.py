import io
import struct

import pytest

from schemas import tfrecord

RECORDS = [b"", b"hello", bytes(range(256)) * 10]


def _write(records):
    buf = io.BytesIO()
    for r in records:
        tfrecord.write_record(buf, r)
    return buf.getvalue()


def test_round_trip():
    assert list(tfrecord.read_records(io.BytesIO(_write(RECORDS)))) == RECORDS


def test_empty_file_has_no_records():
    assert list(tfrecord.read_records(io.BytesIO(b""))) == []


def test_framing_layout_and_known_crc():
    data = _write([b"hello"])
    assert struct.unpack_from("<Q", data)[0] == 5
    assert data[12:17] == b"hello"
    assert len(data) == 8 + 4 + 5 + 4
    # crc32c("123456789") == 0xE3069283 (RFC 3720 check value), then masked.
    crc = 0xE3069283
    expected = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert tfrecord.masked_crc(b"123456789") == expected


def test_bytes_are_deterministic():
    assert _write(RECORDS) == _write(RECORDS)


@pytest.mark.parametrize("offset,what", [(3, "length crc"), (13, "data crc"), (-1, "data crc")])
def test_corruption_detected(offset, what):
    data = bytearray(_write([b"hello world"]))
    data[offset] ^= 0x01
    with pytest.raises(ValueError, match=what):
        list(tfrecord.read_records(io.BytesIO(bytes(data))))


def test_corruption_ignored_without_verify():
    data = bytearray(_write([b"hello world"]))
    data[13] ^= 0x01
    assert len(list(tfrecord.read_records(io.BytesIO(bytes(data)), verify=False))) == 1


@pytest.mark.parametrize("cut", [1, 4, 8, 12 + 3, 12 + 11 + 2])
def test_truncation_detected(cut):
    full = _write([b"first", b"hello world"])
    second_start = 12 + 5 + 4
    with pytest.raises(ValueError, match="truncated"):
        list(tfrecord.read_records(io.BytesIO(full[: second_start + cut])))
