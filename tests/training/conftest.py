"""Fixtures for the training jobs: real streams from the real pipelines, and small hand-made ones."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

from schemas import manifest as manifest_schema  # noqa: E402
from schemas import packed_stream  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY_CONFIG = ROOT / "training" / "configs" / "tiny.json"


@pytest.fixture(scope="session")
def tiny_config() -> pathlib.Path:
    return TINY_CONFIG


@pytest.fixture(scope="session")
def corpus_streams(tmp_path_factory, sample_tokenizer, nl_input, multi_snapshot, sample_manifest) -> dict:
    """NL, Multi and Mono dataset versions made by the real pipelines from the bundled samples
    (seq_len 128, 2 shards), all with the one tokenizer, as CodeGen used one."""
    from pipelines import mono, multi, nl

    root = tmp_path_factory.mktemp("streams")
    common = ["--tokenizer", str(sample_tokenizer), "--num_shards", "2", "--seq_len", "128"]
    nl.main(["--input", nl_input, "--output", str(root / "nl"), *common])
    multi.main(["--bigquery_snapshot", str(multi_snapshot), "--output", str(root / "multi"), *common])
    mono.main(["--input", str(sample_manifest), "--output", str(root / "mono"), "--no-near_dedup", *common])
    return {name: root / name for name in ("nl", "multi", "mono")}


def write_version(folder: pathlib.Path, shards: list, dataset: str = "instruct", tokenizer: dict = None) -> dict:
    """A published dataset version from in-memory shards ``[{column: array [n, L]}, ...]``: Arrow
    (with every column, written with pyarrow) and TFRecord shards, and a valid manifest."""
    from schemas import tfrecord
    from schemas.tf_example import Example

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, columns in enumerate(shards):
        seq_len = columns["input_ids"].shape[1]
        arrow_name = packed_stream.shard_name(index, len(shards), "arrow")
        types = {"input_ids": pa.int32(), "loss_mask": pa.int8(), "segment_ids": pa.int32()}
        np_types = {"input_ids": np.int32, "loss_mask": np.int8, "segment_ids": np.int32}
        schema = pa.schema([pa.field(k, pa.list_(types[k], seq_len), nullable=False) for k in columns])
        with pa.OSFile(str(folder / arrow_name), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            for start in range(0, len(columns["input_ids"]), 3):  # several record batches per shard
                arrays = [pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(v[start:start + 3]).ravel()
                                                                     .astype(np_types[k])), seq_len)
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
            data = (folder / name).read_bytes()
            files.append({"path": name, "format": fmt, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        n = len(columns["input_ids"])
        entries.append({"shard": index, "files": files, "records": n, "tokens": int(columns["input_ids"].size),
                        "padding_tokens": 0, "documents": n, "document_tokens": int(columns["input_ids"].size),
                        "tail_tokens": 0, "dropped_tail_tokens": 0})
    config = {"seq_len": int(shards[0]["input_ids"].shape[1]), "test": True}
    manifest = {"format_version": manifest_schema.FORMAT_VERSION, "dataset": dataset,
                "created": {"started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:00:00Z"},
                "sluice": {"version": "test"}, "config": config, "config_fingerprint": manifest_schema.fingerprint(config),
                "inputs": {}, "tokenizer": tokenizer or {"sha256": "none", "vocab_size": 300}, "counts": {},
                "stream": {"seq_len": config["seq_len"], "formats": ["tfrecord", "arrow"]},
                "shards": entries, "totals": manifest_schema.totals_of(entries)}
    manifest_schema.validate(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


@pytest.fixture(scope="session")
def numbered_version(tmp_path_factory) -> pathlib.Path:
    """3 shards of 7, 0 and 11 rows whose row r (global, in shard order) is all ``r``: every row is
    identifiable, and one shard is empty. Has input_ids, loss_mask and segment_ids."""
    rows = [7, 0, 11]
    shards, start = [], 0
    for n in rows:
        ids = np.repeat(np.arange(start, start + n, dtype=np.int32)[:, None], 8, axis=1)
        shards.append({"input_ids": ids, "loss_mask": (ids % 2).astype(np.int8),
                       "segment_ids": np.ones_like(ids)})
        start += n
    folder = tmp_path_factory.mktemp("numbered") / "version"
    write_version(folder, shards, dataset="numbered")
    return folder


@pytest.fixture(scope="session")
def write_version_fn():
    return write_version
