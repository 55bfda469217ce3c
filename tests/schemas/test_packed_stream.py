import io

import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pytest

from schemas import packed_stream as ps
from schemas.tf_example import decode_int64_example

SEQ_LEN = 16


@pytest.fixture
def rows():
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 50_000, size=(37, SEQ_LEN), dtype=np.int32)
    mask = rng.integers(0, 2, size=(37, SEQ_LEN), dtype=np.int8)
    return ids, mask


def _arrow_bytes(ids, mask=None, batch_rows=10):
    buf = io.BytesIO()
    ps.write_arrow_stream(buf, ids, mask, batch_rows=batch_rows)
    return buf.getvalue()


def _tfrecord_bytes(ids, mask=None):
    buf = io.BytesIO()
    ps.write_tfrecord_shard(buf, ids, mask)
    return buf.getvalue()


def test_shard_name():
    assert ps.shard_name(0, 64, "tfrecord") == "train-00000-of-00064.tfrecord"
    assert ps.shard_name(63, 64, ".arrow", prefix="val") == "val-00063-of-00064.arrow"
    with pytest.raises(ValueError):
        ps.shard_name(64, 64, "tfrecord")


def test_arrow_schema():
    s = ps.arrow_schema(SEQ_LEN, with_loss_mask=True)
    assert s.field("input_ids").type == pa.list_(pa.int32(), SEQ_LEN)
    assert s.field("loss_mask").type == pa.list_(pa.int8(), SEQ_LEN)
    assert ps.arrow_schema(SEQ_LEN, with_loss_mask=False).names == ["input_ids"]


@pytest.mark.parametrize("with_mask", [False, True])
def test_arrow_round_trip_and_determinism(rows, with_mask, tmp_path):
    ids, mask = rows
    mask = mask if with_mask else None
    data = _arrow_bytes(ids, mask)
    assert data == _arrow_bytes(ids.copy(), None if mask is None else mask.copy())
    path = tmp_path / ps.shard_name(0, 1, "arrow")
    path.write_bytes(data)
    for source in (path, str(path), io.BytesIO(data)):
        got_ids, got_mask = ps.read_arrow_stream(source)
        assert got_ids.dtype == np.int32
        np.testing.assert_array_equal(got_ids, ids)
        if with_mask:
            assert got_mask.dtype == np.int8
            np.testing.assert_array_equal(got_mask, mask)
        else:
            assert got_mask is None


def test_arrow_stream_readable_by_plain_pyarrow(rows):
    ids, mask = rows
    reader = pa.ipc.open_stream(io.BytesIO(_arrow_bytes(ids, mask, batch_rows=10)))
    assert reader.schema == ps.arrow_schema(SEQ_LEN, with_loss_mask=True)
    batches = list(reader)
    assert [b.num_rows for b in batches] == [10, 10, 10, 7]
    table = pa.Table.from_batches(batches)
    assert table.column("input_ids").type == pa.list_(pa.int32(), SEQ_LEN)
    assert table.column("input_ids").to_pylist() == ids.tolist()
    assert table.column("loss_mask").to_pylist() == mask.tolist()


def test_arrow_empty_stream():
    ids, mask = ps.read_arrow_stream(io.BytesIO(_arrow_bytes(np.zeros((0, SEQ_LEN), np.int32))))
    assert ids.shape == (0, SEQ_LEN) and mask is None


@pytest.mark.parametrize("with_mask", [False, True])
def test_tfrecord_round_trip_and_determinism(rows, with_mask):
    ids, mask = rows
    mask = mask if with_mask else None
    data = _tfrecord_bytes(ids, mask)
    assert data == _tfrecord_bytes(ids.copy(), None if mask is None else mask.copy())
    got_ids, got_mask = ps.read_tfrecord_shard(io.BytesIO(data))
    assert got_ids.dtype == np.int32
    np.testing.assert_array_equal(got_ids, ids)
    if with_mask:
        np.testing.assert_array_equal(got_mask, mask)
    else:
        assert got_mask is None


def test_tfrecord_records_are_int64_examples(rows):
    ids, mask = rows
    from schemas.tfrecord import read_records

    records = list(read_records(io.BytesIO(_tfrecord_bytes(ids, mask))))
    assert len(records) == len(ids)
    first = decode_int64_example(records[0])
    np.testing.assert_array_equal(first["input_ids"], ids[0])
    np.testing.assert_array_equal(first["loss_mask"], mask[0])


def test_tfrecord_truncated_shard_detected(rows):
    data = _tfrecord_bytes(*rows)
    with pytest.raises(ValueError, match="truncated"):
        ps.read_tfrecord_shard(io.BytesIO(data[:-3]))


def test_tfrecord_corrupted_shard_detected(rows):
    data = bytearray(_tfrecord_bytes(*rows))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="crc mismatch"):
        ps.read_tfrecord_shard(io.BytesIO(bytes(data)))


def test_writers_validate_shapes(rows):
    ids, mask = rows
    with pytest.raises(ValueError, match="loss_mask shape"):
        _arrow_bytes(ids, mask[:, :-1])
    with pytest.raises(ValueError, match="seq_len"):
        _tfrecord_bytes(ids[0])
    with pytest.raises(ValueError, match="int32"):
        _tfrecord_bytes(np.full((1, SEQ_LEN), 2**40, dtype=np.int64))


def test_tensorflow_parses_our_tfrecord_shard(rows, tmp_path):
    tf = pytest.importorskip(
        "tensorflow", reason="TensorFlow not installed; cross-check against TF's parser skipped")
    ids, mask = rows
    path = tmp_path / ps.shard_name(3, 8, "tfrecord")
    with open(path, "wb") as f:
        ps.write_tfrecord_shard(f, ids, mask)
    spec = {
        "input_ids": tf.io.FixedLenFeature([SEQ_LEN], tf.int64),
        "loss_mask": tf.io.FixedLenFeature([SEQ_LEN], tf.int64),
    }
    parsed = [tf.io.parse_single_example(r, spec)
              for r in tf.data.TFRecordDataset(str(path))]
    assert len(parsed) == len(ids)
    np.testing.assert_array_equal(np.stack([p["input_ids"].numpy() for p in parsed]), ids)
    np.testing.assert_array_equal(np.stack([p["loss_mask"].numpy() for p in parsed]), mask)
    # TF's own generated Example class serializes the same row to the same bytes.
    ex = tf.train.Example(features=tf.train.Features(feature={
        "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=ids[0].tolist())),
        "loss_mask": tf.train.Feature(int64_list=tf.train.Int64List(value=mask[0].tolist())),
    }))
    first = next(iter(tf.data.TFRecordDataset(str(path)))).numpy()
    assert ex.SerializeToString(deterministic=True) == first
