"""The one ``join`` and the one streaming sha256 of published files."""

from __future__ import annotations

import hashlib
import io

from schemas import files


def test_join_keeps_urls_and_drops_one_trailing_slash():
    assert files.join("/data/nl/v1", "manifest.json") == "/data/nl/v1/manifest.json"
    assert files.join("/data/nl/v1/", "manifest.json") == "/data/nl/v1/manifest.json"
    assert files.join("gs://bucket/nl/v1", "holdout-a/manifest.json") == "gs://bucket/nl/v1/holdout-a/manifest.json"


def test_sha256_of_a_file_larger_than_one_chunk(tmp_path):
    data = bytes(range(256)) * (3 * files.CHUNK_BYTES // 256 + 7)
    path = tmp_path / "blob"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        assert files.sha256_of(handle) == (len(data), hashlib.sha256(data).hexdigest())


def test_sha256_of_hashes_what_is_left_in_the_handle():
    handle = io.BytesIO(b"header:payload")
    handle.read(7)
    assert files.sha256_of(handle) == (7, hashlib.sha256(b"payload").hexdigest())
    assert files.sha256_of(io.BytesIO(b"")) == (0, hashlib.sha256(b"").hexdigest())


def test_hashing_reader_covers_what_a_parser_read_and_the_rest():
    data = b"0123456789" * 1000
    reader = files.HashingReader(io.BytesIO(data))
    assert reader.read(3) == b"012" and reader.size == 3
    assert reader.drain() == (len(data), hashlib.sha256(data).hexdigest())
