"""Hand-made dataset versions written straight to a local folder, for tests and benchmarks.

Real versions come from the pipelines; these write in-memory shards (e.g. with ``segment_ids``)
as Arrow and TFRecord files with a valid manifest, so the readers can be tested and measured
without running Beam.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from schemas import manifest as manifest_schema
from schemas import packed_stream, tfrecord
from schemas.files import sha256_of
from schemas.tf_example import Example


def write_version(folder, shards: list, dataset: str, tokenizer: Optional[dict] = None,
                  batch_rows: int = 3, parents: Optional[dict] = None) -> dict:
    """Publish in-memory shards ``[{column: int array [n, L]}, ...]`` as a local dataset version:
    Arrow shards (every column, ``batch_rows`` rows a record batch), TFRecord shards and a valid manifest
    (format 2: ``folder`` is ROOT/DATASET/VERSION, ``parents`` the lineage's parent versions).

    For tests and benchmarks of the readers (hand-made streams, e.g. with ``segment_ids``); real
    datasets come from the pipelines."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, columns in enumerate(shards):
        seq_len = columns["input_ids"].shape[1]
        arrow_name = packed_stream.shard_name(index, len(shards), "arrow")
        dtypes = {k: np.dtype(packed_stream.COLUMN_DTYPES.get(k, np.int64)) for k in columns}
        schema = pa.schema([pa.field(k, pa.list_(pa.from_numpy_dtype(dtypes[k]), seq_len), nullable=False)
                            for k in columns])
        with pa.OSFile(str(folder / arrow_name), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for start in range(0, len(columns["input_ids"]), batch_rows):
                arrays = [pa.FixedSizeListArray.from_arrays(
                    pa.array(np.asarray(v[start:start + batch_rows], dtype=dtypes[k]).ravel()), seq_len)
                    for k, v in columns.items()]
                writer.write_batch(pa.record_batch(arrays, schema=schema))
        tf_name = packed_stream.shard_name(index, len(shards), "tfrecord")
        with open(folder / tf_name, "wb") as handle:
            for row in range(len(columns["input_ids"])):
                example = Example()
                for k, v in sorted(columns.items()):
                    example.features.feature[k].int64_list.value.extend(v[row].tolist())
                tfrecord.write_record(handle, example.SerializeToString(deterministic=True))
        files = []
        for name, fmt in ((tf_name, "tfrecord"), (arrow_name, "arrow")):
            with open(folder / name, "rb") as handle:
                size, sha256 = sha256_of(handle)
            files.append({"path": name, "format": fmt, "bytes": size, "sha256": sha256})
        n = len(columns["input_ids"])
        entries.append({"shard": index, "files": files, "records": n, "tokens": int(columns["input_ids"].size),
                        "padding_tokens": 0, "documents": n, "document_tokens": int(columns["input_ids"].size),
                        "tail_tokens": 0, "dropped_tail_tokens": 0})
    config = {"seq_len": int(shards[0]["input_ids"].shape[1]), "test": True}
    tokenizer = tokenizer or {"sha256": "none", "vocab_size": 300}
    manifest = {"format_version": manifest_schema.FORMAT_VERSION, "dataset": dataset,
                "version": {"name": folder.name, "dataset_folder": str(folder.parent)},
                "created": {"started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:00Z"},
                "sluice": {"version": "test"}, "config": config, "config_fingerprint": manifest_schema.fingerprint(config),
                "inputs": {}, "tokenizer": tokenizer,
                "lineage": {"parents": dict(sorted((parents or {}).items())),
                            "tokenizer_sha256": tokenizer.get("sha256"),
                            "inputs_fingerprint": manifest_schema.fingerprint({})},
                "counts": {},
                "stream": {"seq_len": config["seq_len"], "formats": ["tfrecord", "arrow"]},
                "shards": entries, "totals": manifest_schema.totals_of(entries)}
    manifest_schema.validate(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def write_index(folder, splits: dict, dataset: str = "instruct") -> dict:
    """Publish an ``--all_holdouts`` index version at ``folder``: each of ``splits`` (``{name:
    shards}``, shards as for :func:`write_version`) a version in its subfolder, and the index
    manifest (no shards of its own) listing them with their manifests' sha256. For tests."""
    folder = pathlib.Path(folder)
    manifests = {name: write_version(folder / name, parts, dataset) for name, parts in splits.items()}
    top = {**next(iter(manifests.values())), "shards": [], "totals": manifest_schema.totals_of([])}
    top["version"] = {"name": folder.name, "dataset_folder": str(folder.parent)}
    top["splits"] = {name: {"path": name, "totals": m["totals"],
                            "manifest_sha256": hashlib.sha256((folder / name / "manifest.json").read_bytes()).hexdigest()}
                     for name, m in manifests.items()}
    manifest_schema.validate(top)
    (folder / "manifest.json").write_text(json.dumps(top))
    return top
