"""Manifest assembly: published paths, lineage from the tokenizer's version, file hashes, sections."""

from __future__ import annotations

import argparse
import hashlib
import json

from pipelines import manifests, versions
from schemas import manifest as manifest_schema


def publish_tokenizer_version(folder) -> dict:
    folder.mkdir(parents=True)
    (folder / "tokenizer.model").write_bytes(b"model bytes")
    parent = {"dataset": "tokenizer", "version": {"name": "v1"}, "config_fingerprint": "abc"}
    versions.write_json_file(str(folder / "manifest.json"), parent)
    return parent


def test_file_sha256_streams_the_file(tmp_path):
    data = b"x" * (3 << 20) + b"tail"
    (tmp_path / "f").write_bytes(data)
    assert manifests.file_sha256(str(tmp_path / "f")) == {
        "path": str(tmp_path / "f"), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_parent_version_of_a_model_file_and_of_a_folder(tmp_path):
    publish_tokenizer_version(tmp_path / "tokenizer" / "v1")
    raw = (tmp_path / "tokenizer" / "v1" / "manifest.json").read_bytes()
    expect = {"dataset": "tokenizer", "version": "v1", "path": str(tmp_path / "tokenizer" / "v1"),
              "manifest_sha256": hashlib.sha256(raw).hexdigest(), "config_fingerprint": "abc"}
    assert manifests.parent_version(str(tmp_path / "tokenizer" / "v1" / "tokenizer.model")) == expect
    assert manifests.parent_version(str(tmp_path / "tokenizer" / "v1")) == expect
    assert manifests.parent_version(str(tmp_path / "loose.model")) is None


def test_build_manifest_records_published_paths_and_the_tokenizers_lineage(tmp_path):
    publish_tokenizer_version(tmp_path / "tokenizer" / "v1")
    model = str(tmp_path / "tokenizer" / "v1" / "tokenizer.model")
    version, staging = str(tmp_path / "mono" / "v2"), str(tmp_path / "mono" / "_staging" / "v2")
    manifest = manifests.build_manifest(
        version, staging, dataset="mono", started="2026-12-07T00:00:00Z", config={"seq_len": 8},
        counts={"pack": {"sequences": 0}}, inputs={"manifest": {"sha256": "x"}},
        tokenizer={"path": model, "sha256": "t"}, shards=[], split="holdout-a", near_dedup={"bands": 1})
    manifest_schema.validate(manifest)
    assert manifest["version"] == {"name": "v2", "dataset_folder": str(tmp_path / "mono"), "split": "holdout-a"}
    assert manifest["lineage"]["parents"]["tokenizer"]["version"] == "v1"
    assert manifest["lineage"]["tokenizer_sha256"] == "t"
    assert manifest["near_dedup"] == {"bands": 1}
    staged_model = manifests.build_manifest(
        version, staging, dataset="tokenizer", started="s", config={}, counts={}, inputs={},
        tokenizer={"path": staging + "/tokenizer.model"}, shards=[])
    assert staged_model["tokenizer"]["path"] == version + "/tokenizer.model"  # where it is published


def test_stream_sections_follow_the_stream_flags(tmp_path):
    (tmp_path / "t.model").write_bytes(b"m")

    class Tok:
        vocab_size, eot_id, pad_id = 300, 2, 0

    args = argparse.Namespace(tokenizer=str(tmp_path / "t.model"), seq_len=16, pack_tail="pad",
                              write_documents=True, write_rejects=False)
    sections = manifests.stream_sections(args, Tok())
    assert sections["stream"] == {"seq_len": 16, "formats": ["tfrecord", "arrow"], "loss_mask": True}
    assert sections["side_outputs"] == {"documents": "documents/", "rejects": None}
    assert sections["tokenizer"]["vocab_size"] == 300 and sections["tokenizer"]["bytes"] == 1
    assert manifests.stream_sections(args, Tok(), {"examples": None})["side_outputs"] == {"examples": None}
    json.dumps(sections)
