"""Shard writer: atomic writes with the right size and sha256, shards that read back as packed."""

from __future__ import annotations

import hashlib

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.packed_stream import read_arrow_stream, read_tfrecord_shard, shard_name
from transforms.streams.packing import pack
from transforms.streams.shard_writer import PackAndWriteShards, write_atomically

EOT, PAD = 2, 0


def test_write_atomically_reports_size_and_sha256(tmp_path):
    path = tmp_path / "out.bin"
    payload = [b"abc", bytearray(b"\x00" * 1000), memoryview(b"xyz")]

    def write(fileobj):
        for chunk in payload:
            fileobj.write(chunk)

    size, digest = write_atomically(str(path), write)
    data = b"".join(bytes(c) for c in payload)
    assert path.read_bytes() == data
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary left

    # Rewriting replaces the file.
    size, digest = write_atomically(str(path), lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and size == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_write_atomically_leaves_no_partial_file_on_error(tmp_path):
    path = tmp_path / "shard.tfrecord"
    path.write_bytes(b"previous complete shard")

    def failing(fileobj):
        fileobj.write(b"half")
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        write_atomically(str(path), failing)
    assert path.read_bytes() == b"previous complete shard"
    assert [p.name for p in tmp_path.iterdir()] == ["shard.tfrecord"], "no temporary file is left"


def _shard_docs(index, lengths, start):
    docs, value = [], start
    for n in lengths:
        tokens = np.arange(value, value + n, dtype="<i4")
        docs.append((index * 1000 + n, f"doc{value}", tokens.tobytes()))
        value += n
    return docs


@pytest.mark.parametrize("tail", ["drop", "pad"])
def test_pack_and_write_shards_pipeline(tmp_path, tail, beam_helpers):
    new_pipeline, run, counters = beam_helpers
    num_shards, seq_len = 3, 8
    shards = [(0, _shard_docs(0, [5, 9, 1], 100)), (1, []), (2, _shard_docs(2, [20, 3], 500))]
    p = new_pipeline()
    stats = p | beam.Create(shards) | PackAndWriteShards(str(tmp_path), num_shards, seq_len, EOT, PAD,
                                                         tail=tail)
    assert_that(stats | beam.Map(lambda s: s["shard"]), equal_to([0, 1, 2]))
    result = run(p)

    # The stats are checked against the files themselves, after the run.
    expected_counts = {"sequences": 0, "documents": 0, "tail_tokens": 0, "dropped_tail_tokens": 0}
    for index, docs in shards:
        packed = pack(index, [np.frombuffer(t, dtype="<i4") for _, _, t in docs], seq_len, EOT, PAD, tail)
        for fmt, reader in (("tfrecord", read_tfrecord_shard), ("arrow", read_arrow_stream)):
            path = tmp_path / shard_name(index, num_shards, fmt)
            with open(path, "rb") as handle:
                ids, mask = reader(handle)
            np.testing.assert_array_equal(ids.reshape(-1, seq_len), packed.input_ids)
            if tail == "pad" and not (fmt == "tfrecord" and packed.input_ids.shape[0] == 0):
                # (an empty TFRecord file cannot say whether its rows would carry a mask)
                np.testing.assert_array_equal(mask.reshape(-1, seq_len), packed.loss_mask)
            else:
                assert mask is None
        expected_counts["sequences"] += packed.input_ids.shape[0]
        expected_counts["documents"] += packed.documents
        expected_counts["tail_tokens"] += packed.tail_tokens
        expected_counts["dropped_tail_tokens"] += packed.dropped_tokens
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        shard_name(i, num_shards, fmt) for i in range(num_shards) for fmt in ("tfrecord", "arrow"))
    got = counters(result, "pack")
    assert {k: got.get(k, 0) for k in expected_counts} == expected_counts
    assert expected_counts["sequences"] > 0


def test_pack_and_write_shards_stats_match_files(tmp_path, beam_helpers):
    new_pipeline, run, _ = beam_helpers
    num_shards, seq_len = 2, 4
    shards = [(0, _shard_docs(0, [6, 2], 10)), (1, _shard_docs(1, [1], 40))]

    def check(all_stats):
        by_shard = {s["shard"]: s for s in all_stats}
        assert sorted(by_shard) == [0, 1]
        zero = by_shard[0]
        # shard 0: 6+1 + 2+1 = 10 tokens -> 3 rows of 4 with 2 padding tokens
        assert (zero["records"], zero["tokens"], zero["padding_tokens"], zero["documents"],
                zero["document_tokens"], zero["tail_tokens"], zero["dropped_tail_tokens"]) == (
            3, 12, 2, 2, 10, 2, 0)
        for stats in all_stats:
            assert [f["format"] for f in stats["files"]] == ["tfrecord", "arrow"]
            for f in stats["files"]:
                assert f["path"] == shard_name(stats["shard"], num_shards, f["format"])
                data = (tmp_path / f["path"]).read_bytes()  # written before the stats are emitted
                assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"])

    p = new_pipeline()
    stats = p | beam.Create(shards) | PackAndWriteShards(str(tmp_path) + "/", num_shards, seq_len,
                                                         EOT, PAD, tail="pad")
    assert_that(stats, check)
    run(p)
