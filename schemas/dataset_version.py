"""A published dataset version read back through its manifest, for any trainer (no Beam).

A version is a folder (local path or any fsspec URL) with ``manifest.json`` and the shards it
lists. Readers find shard files, record counts and checksums in the manifest and nowhere else,
and check a shard's bytes against its sha256 before trusting it, since a silently damaged shard
would train on garbage without any error.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterator, Optional

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.ipc

from schemas import manifest as manifest_schema
from schemas import tfrecord
from schemas.tf_example import Example

FORMATS = ("arrow", "tfrecord")
# Stored widths of the known columns; TFRecord keeps every integer as int64.
COLUMN_DTYPES = {"input_ids": np.int32, "loss_mask": np.int8, "segment_ids": np.int32}


class DatasetError(ValueError):
    """A dataset version that cannot be read as published (missing, damaged, inconsistent)."""


def join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


def read_manifest(version: str) -> dict:
    """The validated manifest of a version folder."""
    path = join(version, manifest_schema.MANIFEST_NAME)
    try:
        with fsspec.open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DatasetError(f"{version}: no {manifest_schema.MANIFEST_NAME} (not a published dataset)") from None
    manifest = json.loads(raw)
    try:
        manifest_schema.validate(manifest)
    except ValueError as err:
        raise DatasetError(f"{path}: {err}") from None
    return manifest


def manifest_fingerprint(manifest: dict) -> str:
    """Identity of a dataset version: sha256 of its manifest's canonical JSON."""
    return manifest_schema.fingerprint(manifest)


def shard_files(manifest: dict, fmt: str) -> list[dict]:
    """One entry per shard, in shard order: ``{"path", "bytes", "sha256", "records"}``."""
    if fmt not in FORMATS:
        raise DatasetError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = []
    for shard in sorted(manifest["shards"], key=lambda s: s["shard"]):
        files = [f for f in shard["files"] if f["format"] == fmt]
        if len(files) != 1:
            raise DatasetError(f"shard {shard['shard']} has {len(files)} {fmt} files in the manifest")
        out.append({**files[0], "records": shard["records"]})
    return out


def verify_file(url: str, expected_bytes: int, expected_sha256: str) -> None:
    digest, size = hashlib.sha256(), 0
    with fsspec.open(url, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    if size != expected_bytes or digest.hexdigest() != expected_sha256:
        raise DatasetError(f"{url}: {size} bytes sha256 {digest.hexdigest()[:12]}..., manifest says "
                           f"{expected_bytes} bytes sha256 {expected_sha256[:12]}... (damaged or replaced shard)")


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


def iter_tfrecord_batches(url: str, batch_rows: int = 256) -> Iterator[dict]:
    """A TFRecord shard in batches of ``batch_rows`` Examples: every int64 feature as a column."""
    example = Example()
    rows: dict = {}
    count = 0
    with fsspec.open(url, "rb") as handle:
        for data in tfrecord.read_records(handle):
            example.Clear()
            example.ParseFromString(data)
            fmap = example.features.feature
            if count and set(fmap.keys()) != set(rows):
                raise DatasetError(f"{url}: records carry different features")
            for name in fmap.keys():
                values = fmap[name].int64_list.value
                rows.setdefault(name, []).append(
                    np.fromiter(values, dtype=COLUMN_DTYPES.get(name, np.int64), count=len(values)))
            count += 1
            if count == batch_rows:
                yield {name: np.stack(v) for name, v in rows.items()}
                rows, count = {}, 0
    if count:
        yield {name: np.stack(v) for name, v in rows.items()}


def iter_batches(url: str, fmt: str) -> Iterator[dict]:
    return iter_arrow_batches(url) if fmt == "arrow" else iter_tfrecord_batches(url)


def seq_len_of(manifest: dict) -> Optional[int]:
    for key in ("stream", "config"):
        section = manifest.get(key) or {}
        if isinstance(section, dict) and section.get("seq_len"):
            return int(section["seq_len"])
    return None
