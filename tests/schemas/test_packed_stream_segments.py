"""segment_ids on the packed streams: round trips, and streams without them keep their old bytes."""

import hashlib
import io

import numpy as np
import pytest

from schemas import packed_stream as ps
from schemas.tf_example import decode_int64_example
from schemas.tfrecord import read_records


def rows():
    ids = (np.arange(5 * 16, dtype=np.int64).reshape(5, 16) * 7919 % 50000).astype(np.int32)
    mask = (np.arange(5 * 16).reshape(5, 16) % 3 == 0).astype(np.int8)
    segments = np.repeat(np.arange(4, dtype=np.int32), 4)[None, :].repeat(5, axis=0)
    return ids, mask, segments


def written(writer, *args, **kwargs) -> bytes:
    buffer = io.BytesIO()
    writer(buffer, *args, **kwargs)
    return buffer.getvalue()


# sha256 of these rows' TFRecord shards as written before segment_ids existed (commit 515a5b8).
OLD_TFRECORD = {False: "4dffa88f552d3cfc20e0f6f2dde2a42dae49491a76b7bb525820c78f88ae6c52",
                True: "b487eeaab5ea3bebdb88517ad68bad96c39c2b6ff7fe27e7ea2c6496757e5f52"}


@pytest.mark.parametrize("with_mask", [False, True])
def test_streams_without_segment_ids_keep_their_bytes(with_mask):
    ids, mask, _ = rows()
    data = written(ps.write_tfrecord_shard, ids, mask if with_mask else None)
    assert hashlib.sha256(data).hexdigest() == OLD_TFRECORD[with_mask]
    arrow = written(ps.write_arrow_stream, ids, mask if with_mask else None)
    assert list(ps.read_arrow_columns(io.BytesIO(arrow))) == ["input_ids", "loss_mask"][:1 + with_mask]


def test_segment_ids_round_trip_in_both_formats():
    ids, mask, segments = rows()
    arrow = ps.read_arrow_columns(io.BytesIO(written(ps.write_arrow_stream, ids, mask, segment_ids=segments)))
    tfrecord = ps.read_tfrecord_columns(io.BytesIO(written(ps.write_tfrecord_shard, ids, mask,
                                                           segment_ids=segments)))
    for columns in (arrow, tfrecord):
        assert set(columns) == {"input_ids", "loss_mask", "segment_ids"}
        np.testing.assert_array_equal(columns["input_ids"], ids)
        np.testing.assert_array_equal(columns["loss_mask"], mask)
        np.testing.assert_array_equal(columns["segment_ids"], segments)
        assert columns["segment_ids"].dtype == np.int32
    # The old two-value readers still read such a stream.
    got_ids, got_mask = ps.read_arrow_stream(io.BytesIO(written(ps.write_arrow_stream, ids, mask,
                                                                 segment_ids=segments)))
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got_mask, mask)


def test_segment_ids_are_int64_features_named_segment_ids():
    ids, mask, segments = rows()
    data = written(ps.write_tfrecord_shard, ids, mask, segment_ids=segments)
    first = decode_int64_example(next(iter(read_records(io.BytesIO(data)))))
    np.testing.assert_array_equal(first["segment_ids"], segments[0])
    np.testing.assert_array_equal(first["input_ids"], ids[0])


def test_bad_segment_ids_are_refused():
    ids, mask, segments = rows()
    with pytest.raises(ValueError, match="segment_ids shape"):
        written(ps.write_arrow_stream, ids, mask, segment_ids=segments[:, :3])
    with pytest.raises(ValueError, match="segment_ids must be"):
        written(ps.write_tfrecord_shard, ids, mask, segment_ids=-segments - 1)
