"""Packed-sequence stream schema, shared by the Sluice writer and its readers.

Each row is one packed training sequence of ``seq_len`` token ids, with an
optional per-token ``loss_mask`` and optional ``segment_ids`` (instruction
mixtures pack several examples a row: 1, 2, 3... per example, 0 = padding).
Two on-disk forms carry the same rows:

* Arrow IPC *stream* (``input_ids: fixed_size_list<int32>[seq_len]``, optional
  ``loss_mask: fixed_size_list<int8>[seq_len]``, optional
  ``segment_ids: fixed_size_list<int32>[seq_len]``), for zero-copy numpy readers.
* TFRecord of ``tf.train.Example`` (int64 features of the same names), for
  TensorFlow/tf.data readers.

A stream without segment ids is written exactly as before the column existed, so
older corpora keep their bytes; ``read_*_columns`` return every column present.

Both writers are byte-for-byte deterministic for the same input, so re-running
a pipeline gives identical shards.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Dict, Optional, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from schemas import tfrecord
from schemas.tf_example import Example

INPUT_IDS = "input_ids"
LOSS_MASK = "loss_mask"
SEGMENT_IDS = "segment_ids"


def shard_name(index: int, num_shards: int, ext: str, prefix: str = "train") -> str:
    """``shard_name(0, 64, "tfrecord") -> "train-00000-of-00064.tfrecord"``."""
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} out of range for {num_shards} shards")
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.{ext.lstrip('.')}"


def arrow_schema(seq_len: int, with_loss_mask: bool, with_segment_ids: bool = False) -> pa.Schema:
    fields = [pa.field(INPUT_IDS, pa.list_(pa.int32(), seq_len), nullable=False)]
    if with_loss_mask:
        fields.append(pa.field(LOSS_MASK, pa.list_(pa.int8(), seq_len), nullable=False))
    if with_segment_ids:
        fields.append(pa.field(SEGMENT_IDS, pa.list_(pa.int32(), seq_len), nullable=False))
    return pa.schema(fields)


def _check(input_ids: np.ndarray, loss_mask: Optional[np.ndarray]):
    input_ids = np.asarray(input_ids)
    if input_ids.dtype != np.int32:
        info = np.iinfo(np.int32)
        if input_ids.size and (input_ids.min() < info.min or input_ids.max() > info.max):
            raise ValueError("input_ids values do not fit in int32")
    input_ids = np.ascontiguousarray(input_ids, dtype=np.int32)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [n, seq_len], got shape {input_ids.shape}")
    if loss_mask is not None:
        loss_mask = np.ascontiguousarray(loss_mask, dtype=np.int8)
        if loss_mask.shape != input_ids.shape:
            raise ValueError(
                f"loss_mask shape {loss_mask.shape} != input_ids shape {input_ids.shape}")
    return input_ids, loss_mask


def _check_segments(input_ids: np.ndarray, segment_ids: Optional[np.ndarray]):
    if segment_ids is None:
        return None
    segment_ids = np.asarray(segment_ids)
    if segment_ids.shape != input_ids.shape:
        raise ValueError(f"segment_ids shape {segment_ids.shape} != input_ids shape {input_ids.shape}")
    if segment_ids.size and (segment_ids.min() < 0 or segment_ids.max() > np.iinfo(np.int32).max):
        raise ValueError("segment_ids must be >= 0 and fit in int32")
    return np.ascontiguousarray(segment_ids, dtype=np.int32)


def _fixed(values: np.ndarray, seq_len: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), seq_len)


def write_arrow_stream(fileobj: BinaryIO, input_ids: np.ndarray,
                       loss_mask: Optional[np.ndarray] = None,
                       batch_rows: int = 1024,
                       segment_ids: Optional[np.ndarray] = None) -> None:
    """Write rows as an Arrow IPC stream in fixed ``batch_rows`` record batches."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be >= 1")
    input_ids, loss_mask = _check(input_ids, loss_mask)
    segment_ids = _check_segments(input_ids, segment_ids)
    seq_len = input_ids.shape[1]
    schema = arrow_schema(seq_len, loss_mask is not None, segment_ids is not None)
    with pa.ipc.new_stream(fileobj, schema) as writer:
        for start in range(0, input_ids.shape[0], batch_rows):
            cols = [_fixed(input_ids[start:start + batch_rows], seq_len)]
            if loss_mask is not None:
                cols.append(_fixed(loss_mask[start:start + batch_rows], seq_len))
            if segment_ids is not None:
                cols.append(_fixed(segment_ids[start:start + batch_rows], seq_len))
            writer.write_batch(pa.record_batch(cols, schema=schema))


def _to_numpy(col: pa.ChunkedArray, seq_len: int, dtype) -> np.ndarray:
    if col.num_chunks == 0:
        return np.empty((0, seq_len), dtype=dtype)
    flat = [c.flatten().to_numpy(zero_copy_only=False) for c in col.chunks]
    return np.concatenate(flat).astype(dtype, copy=False).reshape(-1, seq_len)


# Stored widths of the known columns; TFRecord keeps every integer as int64.
COLUMN_DTYPES = {INPUT_IDS: np.int32, LOSS_MASK: np.int8, SEGMENT_IDS: np.int32}


def read_arrow_columns(source: Union[str, os.PathLike, BinaryIO]) -> Dict[str, np.ndarray]:
    """Every column of a stream written by :func:`write_arrow_stream`: ``{name: [n, seq_len]}``."""
    if isinstance(source, (str, os.PathLike)):
        with pa.OSFile(os.fspath(source), "rb") as f:
            table = pa.ipc.open_stream(f).read_all()
    else:
        table = pa.ipc.open_stream(source).read_all()
    seq_len = table.schema.field(INPUT_IDS).type.list_size
    return {name: _to_numpy(table.column(name), seq_len, COLUMN_DTYPES[name])
            for name in (INPUT_IDS, LOSS_MASK, SEGMENT_IDS) if name in table.schema.names}


def read_arrow_stream(source: Union[str, os.PathLike, BinaryIO]
                      ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read a stream written by :func:`write_arrow_stream`.

    Returns ``(input_ids [n, seq_len] int32, loss_mask [n, seq_len] int8 or None)``.
    """
    columns = read_arrow_columns(source)
    return columns[INPUT_IDS], columns.get(LOSS_MASK)


def write_tfrecord_shard(fileobj: BinaryIO, input_ids: np.ndarray,
                         loss_mask: Optional[np.ndarray] = None,
                         segment_ids: Optional[np.ndarray] = None) -> None:
    """Write one ``tf.train.Example`` per row, in row order.

    Hot path. One Example is reused and its repeated fields refilled from
    ``ndarray.tolist()``: measured fastest (upb converts Python ints much
    faster than numpy scalars; ``extend(ndarray)`` is ~1.5x and constructor
    kwargs ~3x slower). ``deterministic=True`` sorts the map keys.
    """
    input_ids, loss_mask = _check(input_ids, loss_mask)
    segment_ids = _check_segments(input_ids, segment_ids)
    example = Example()
    fmap = example.features.feature
    ids_values = fmap[INPUT_IDS].int64_list.value
    mask_values = fmap[LOSS_MASK].int64_list.value if loss_mask is not None else None
    segment_values = fmap[SEGMENT_IDS].int64_list.value if segment_ids is not None else None
    write = tfrecord.write_record
    for i in range(input_ids.shape[0]):
        ids_values[:] = input_ids[i].tolist()
        if mask_values is not None:
            mask_values[:] = loss_mask[i].tolist()
        if segment_values is not None:
            segment_values[:] = segment_ids[i].tolist()
        write(fileobj, example.SerializeToString(deterministic=True))


def _values(feature, dtype) -> np.ndarray:
    values = feature.int64_list.value
    return np.fromiter(values, dtype=dtype, count=len(values))


def read_tfrecord_columns(fileobj: BinaryIO, verify: bool = True) -> Dict[str, np.ndarray]:
    """Every feature of a shard written by :func:`write_tfrecord_shard`: ``{name: [n, seq_len]}``
    (an empty shard gives ``{"input_ids": [0, 0]}``)."""
    rows: Dict[str, list] = {INPUT_IDS: [], LOSS_MASK: [], SEGMENT_IDS: []}
    example = Example()
    for data in tfrecord.read_records(fileobj, verify=verify):
        example.Clear()
        example.ParseFromString(data)
        fmap = example.features.feature
        for name, dtype in COLUMN_DTYPES.items():
            if name in fmap:
                rows[name].append(_values(fmap[name], dtype))
    if not rows[INPUT_IDS]:
        return {INPUT_IDS: np.empty((0, 0), dtype=np.int32)}
    out = {}
    for name, values in rows.items():
        if values and len(values) != len(rows[INPUT_IDS]):
            raise ValueError(f"{name} present on some records but not others")
        if values:
            out[name] = np.stack(values)
    return out


def read_tfrecord_shard(fileobj: BinaryIO, verify: bool = True
                        ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read a shard written by :func:`write_tfrecord_shard`.

    Returns ``(input_ids int32 [n, seq_len], loss_mask int8 [n, seq_len] or None)``.
    """
    columns = read_tfrecord_columns(fileobj, verify=verify)
    return columns[INPUT_IDS], columns.get(LOSS_MASK)
