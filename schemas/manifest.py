"""The dataset manifest: what a run wrote, from what, with which config, and what it dropped.

``manifest.json`` sits at the root of a dataset version (``ROOT/DATASET/VERSION/``) and is written
last, so its presence means the version is published and complete. Readers (training jobs) find
shards, sizes and checksums here and nowhere else. Format 2 adds ``version`` (name, dataset folder)
and ``lineage`` (parent versions, tokenizer sha256, inputs fingerprint).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2  # 2: version and lineage sections
REQUIRED_KEYS = (
    "format_version", "dataset", "version", "created", "sluice", "config", "config_fingerprint", "inputs",
    "tokenizer", "lineage", "counts", "shards", "totals",
)


def canonical_json(value: Any) -> bytes:
    """The bytes that identify a JSON value: sorted keys, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def plain(value: Any) -> Any:
    """A value as it reads back from JSON (tuples become lists), so a manifest equals its file."""
    return json.loads(json.dumps(value))


def fingerprint(value: Any) -> str:
    """sha256 of a JSON value's canonical form."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def totals_of(shards: list[dict]) -> dict:
    """Totals over the shard entries; ``validate`` recomputes them to catch a stale manifest."""
    keys = ("records", "tokens", "padding_tokens", "documents", "document_tokens",
            "tail_tokens", "dropped_tail_tokens")
    totals = {key: sum(shard[key] for shard in shards) for key in keys}
    totals["shards"] = len(shards)
    totals["bytes"] = sum(f["bytes"] for shard in shards for f in shard["files"])
    return totals


def validate(manifest: dict) -> None:
    """Raise ValueError when a manifest lacks a key or its totals disagree with its shards."""
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ValueError(f"manifest lacks {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise ValueError(f"manifest format {manifest['format_version']}, expected {FORMAT_VERSION}")
    if fingerprint(manifest["config"]) != manifest["config_fingerprint"]:
        raise ValueError("config_fingerprint does not match config")
    if totals_of(manifest["shards"]) != manifest["totals"]:
        raise ValueError("totals do not match the shards")
