"""A published version's shards read back in batches of rows, for trainers and benchmarks (no Beam).

Readers stream a shard (local path or any fsspec URL) a batch at a time, so memory stays bounded by
the batch whatever the shard's size; ``iter_selected`` decodes only the rows a reader's rank and
worker own (TFRecord rows it skips are never parsed).
"""

from __future__ import annotations

from typing import Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.ipc

from schemas import tfrecord
from schemas.dataset_version import DatasetError
from schemas.packed_stream import COLUMN_DTYPES
from schemas.tf_example import Example


def _column_array(column: pa.Array, name: str) -> np.ndarray:
    size = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(COLUMN_DTYPES.get(name, values.dtype), copy=False).reshape(-1, size)


def iter_arrow_batches(url: str) -> Iterator[dict]:
    """Record batches of an Arrow stream shard as ``{column: ndarray [rows, seq_len]}``: every column."""
    with fsspec.open(url, "rb") as handle:
        reader = pa.ipc.open_stream(handle)
        for batch in reader:
            yield {name: _column_array(batch.column(i), name) for i, name in enumerate(batch.schema.names)}


def _add_example(rows: dict, data: bytes, example: Example, url: str, check: bool) -> None:
    """Parse one TFRecord Example into ``rows`` (``{feature: [row arrays]}``); with ``check``, refuse
    one whose features differ from those already in ``rows`` (a chunk must stack)."""
    example.Clear()
    example.ParseFromString(data)
    fmap = example.features.feature
    if check and set(fmap.keys()) != set(rows):
        raise DatasetError(f"{url}: records carry different features")
    for name in fmap.keys():
        values = fmap[name].int64_list.value
        dtype = COLUMN_DTYPES.get(name, np.int64)
        rows.setdefault(name, []).append(np.fromiter(values, dtype=dtype, count=len(values)))


def iter_tfrecord_batches(url: str, batch_rows: int = 256) -> Iterator[dict]:
    """A TFRecord shard in batches of ``batch_rows`` Examples: every int64 feature as a column."""
    example = Example()
    rows: dict = {}
    count = 0
    with fsspec.open(url, "rb") as handle:
        for data in tfrecord.read_records(handle):
            _add_example(rows, data, example, url, check=count > 0)
            count += 1
            if count == batch_rows:
                yield {name: np.stack(v) for name, v in rows.items()}
                rows, count = {}, 0
    if count:
        yield {name: np.stack(v) for name, v in rows.items()}


def iter_batches(url: str, fmt: str) -> Iterator[dict]:
    return iter_arrow_batches(url) if fmt == "arrow" else iter_tfrecord_batches(url)


def iter_selected(url: str, fmt: str, wanted: np.ndarray, records: int, chunk_rows: int = 256) -> Iterator[tuple]:
    """The rows ``wanted`` (sorted local indices) of a shard, as ``(indices, {column: rows})`` chunks
    in order; other rows are skipped undecoded where the format allows (TFRecord: not parsed).
    Raises DatasetError if the shard does not hold exactly ``records`` rows."""
    seen = 0
    if fmt == "arrow":
        for columns in iter_arrow_batches(url):
            n = len(next(iter(columns.values())))
            lo, hi = np.searchsorted(wanted, [seen, seen + n])
            if hi > lo:
                local = wanted[lo:hi] - seen
                yield wanted[lo:hi], {k: v[local] for k, v in columns.items()}
            seen += n
    else:
        example, rows, picked, position = Example(), {}, [], 0
        with fsspec.open(url, "rb") as handle:
            for data in tfrecord.read_records(handle):
                if position < len(wanted) and wanted[position] == seen:
                    position += 1
                    _add_example(rows, data, example, url, check=bool(picked))
                    picked.append(seen)
                    if len(picked) == chunk_rows:
                        yield np.asarray(picked), {k: np.stack(v) for k, v in rows.items()}
                        rows, picked = {}, []
                seen += 1
        if picked:
            yield np.asarray(picked), {k: np.stack(v) for k, v in rows.items()}
    if seen != records:
        raise DatasetError(f"{url}: {seen} rows, manifest says {records}")
