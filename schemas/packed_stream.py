"""Packed-sequence stream schema, shared by the Sluice writer and its readers.

Each row is one packed training sequence of ``seq_len`` token ids, with an
optional per-token ``loss_mask``. Two on-disk forms carry the same rows:

* Arrow IPC *stream* (``input_ids: fixed_size_list<int32>[seq_len]``, optional
  ``loss_mask: fixed_size_list<int8>[seq_len]``), for zero-copy numpy readers.
* TFRecord of ``tf.train.Example`` (int64 features of the same names), for
  TensorFlow/tf.data readers.

Both writers are byte-for-byte deterministic for the same input, so re-running
a pipeline gives identical shards.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Optional, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from schemas import tfrecord
from schemas.tf_example import Example

INPUT_IDS = "input_ids"
LOSS_MASK = "loss_mask"


def shard_name(index: int, num_shards: int, ext: str, prefix: str = "train") -> str:
    """``shard_name(0, 64, "tfrecord") -> "train-00000-of-00064.tfrecord"``."""
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} out of range for {num_shards} shards")
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.{ext.lstrip('.')}"


def arrow_schema(seq_len: int, with_loss_mask: bool) -> pa.Schema:
    fields = [pa.field(INPUT_IDS, pa.list_(pa.int32(), seq_len), nullable=False)]
    if with_loss_mask:
        fields.append(pa.field(LOSS_MASK, pa.list_(pa.int8(), seq_len), nullable=False))
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


def _fixed(values: np.ndarray, seq_len: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), seq_len)


def write_arrow_stream(fileobj: BinaryIO, input_ids: np.ndarray,
                       loss_mask: Optional[np.ndarray] = None,
                       batch_rows: int = 1024) -> None:
    """Write rows as an Arrow IPC stream in fixed ``batch_rows`` record batches."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be >= 1")
    input_ids, loss_mask = _check(input_ids, loss_mask)
    seq_len = input_ids.shape[1]
    schema = arrow_schema(seq_len, loss_mask is not None)
    with pa.ipc.new_stream(fileobj, schema) as writer:
        for start in range(0, input_ids.shape[0], batch_rows):
            cols = [_fixed(input_ids[start:start + batch_rows], seq_len)]
            if loss_mask is not None:
                cols.append(_fixed(loss_mask[start:start + batch_rows], seq_len))
            writer.write_batch(pa.record_batch(cols, schema=schema))


def _to_numpy(col: pa.ChunkedArray, seq_len: int, dtype) -> np.ndarray:
    if col.num_chunks == 0:
        return np.empty((0, seq_len), dtype=dtype)
    flat = [c.flatten().to_numpy(zero_copy_only=False) for c in col.chunks]
    return np.concatenate(flat).astype(dtype, copy=False).reshape(-1, seq_len)


def read_arrow_stream(source: Union[str, os.PathLike, BinaryIO]
                      ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read a stream written by :func:`write_arrow_stream`.

    Returns ``(input_ids [n, seq_len] int32, loss_mask [n, seq_len] int8 or None)``.
    """
    if isinstance(source, (str, os.PathLike)):
        with pa.OSFile(os.fspath(source), "rb") as f:
            table = pa.ipc.open_stream(f).read_all()
    else:
        table = pa.ipc.open_stream(source).read_all()
    seq_len = table.schema.field(INPUT_IDS).type.list_size
    ids = _to_numpy(table.column(INPUT_IDS), seq_len, np.int32)
    mask = None
    if LOSS_MASK in table.schema.names:
        mask = _to_numpy(table.column(LOSS_MASK), seq_len, np.int8)
    return ids, mask


def write_tfrecord_shard(fileobj: BinaryIO, input_ids: np.ndarray,
                         loss_mask: Optional[np.ndarray] = None) -> None:
    """Write one ``tf.train.Example`` per row, in row order.

    Hot path. One Example is reused and its repeated fields refilled from
    ``ndarray.tolist()``: measured fastest (upb converts Python ints much
    faster than numpy scalars; ``extend(ndarray)`` is ~1.5x and constructor
    kwargs ~3x slower). ``deterministic=True`` sorts the map keys.
    """
    input_ids, loss_mask = _check(input_ids, loss_mask)
    example = Example()
    fmap = example.features.feature
    ids_values = fmap[INPUT_IDS].int64_list.value
    mask_values = fmap[LOSS_MASK].int64_list.value if loss_mask is not None else None
    write = tfrecord.write_record
    for i in range(input_ids.shape[0]):
        ids_values[:] = input_ids[i].tolist()
        if mask_values is not None:
            mask_values[:] = loss_mask[i].tolist()
        write(fileobj, example.SerializeToString(deterministic=True))


def _values(feature, dtype) -> np.ndarray:
    values = feature.int64_list.value
    return np.fromiter(values, dtype=dtype, count=len(values))


def read_tfrecord_shard(fileobj: BinaryIO, verify: bool = True
                        ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read a shard written by :func:`write_tfrecord_shard`.

    Returns ``(input_ids int32 [n, seq_len], loss_mask int8 [n, seq_len] or None)``.
    """
    ids_rows, mask_rows = [], []
    example = Example()
    for data in tfrecord.read_records(fileobj, verify=verify):
        example.Clear()
        example.ParseFromString(data)
        fmap = example.features.feature
        ids_rows.append(_values(fmap[INPUT_IDS], np.int32))
        if LOSS_MASK in fmap:
            mask_rows.append(_values(fmap[LOSS_MASK], np.int8))
    if not ids_rows:
        return np.empty((0, 0), dtype=np.int32), None
    if mask_rows and len(mask_rows) != len(ids_rows):
        raise ValueError("loss_mask present on some records but not others")
    ids = np.stack(ids_rows)
    return ids, (np.stack(mask_rows) if mask_rows else None)
