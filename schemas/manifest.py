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

from schemas.files import json_kind, relative_problem

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


SHARD_COUNTS = ("records", "tokens", "padding_tokens", "documents", "document_tokens",
                "tail_tokens", "dropped_tail_tokens")


def totals_of(shards: list[dict]) -> dict:
    """Totals over the shard entries; ``validate`` recomputes them to catch a stale manifest."""
    totals = {key: sum(shard[key] for shard in shards) for key in SHARD_COUNTS}
    totals["shards"] = len(shards)
    totals["bytes"] = sum(f["bytes"] for shard in shards for f in shard["files"])
    return totals


def validate(manifest: dict) -> None:
    """Raise ValueError (one line) when a manifest lacks a key, has a value of the wrong type where
    readers rely on it, names a file outside its folder, or its totals disagree with its shards."""
    if not isinstance(manifest, dict):
        raise ValueError(f"the manifest is {json_kind(manifest)}, not an object")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise ValueError(f"manifest lacks {missing}")
    check_shape(manifest)
    if manifest["format_version"] != FORMAT_VERSION:
        raise ValueError(f"manifest format {manifest['format_version']}, expected {FORMAT_VERSION}")
    if fingerprint(manifest["config"]) != manifest["config_fingerprint"]:
        raise ValueError("config_fingerprint does not match config")
    if totals_of(manifest["shards"]) != manifest["totals"]:
        raise ValueError("totals do not match the shards")


# Shape: the types every reader relies on --------------------------------------------------------

def _field(section: dict, key: str, kind: type, where: str, optional: bool = False):
    """``section[key]`` if it is a ``kind`` (an int: not a bool, not negative), else a ValueError
    naming ``where`` + key; None for an absent ``optional`` key."""
    if key not in section:
        if optional:
            return None
        raise ValueError(f"{where}{key} missing")
    value = section[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}{key} is {json_kind(value)}, expected {json_kind(kind())}")
    if kind is int and value < 0:
        raise ValueError(f"{where}{key} is negative ({value})")
    return value


def _entries(section: dict, key: str, kind: type, where: str, optional: bool = False) -> list:
    """``(where, item)`` for each item of the list or object ``section[key]``, each a dict."""
    value = _field(section, key, kind, where, optional)
    items = enumerate(value or ()) if kind is list else (value or {}).items()
    out = []
    for name, item in items:
        label = f"{where}{key}[{name!r}]" if kind is dict else f"{where}{key}[{name}]"
        if not isinstance(item, dict):
            raise ValueError(f"{label} is {json_kind(item)}, expected an object")
        out.append((label + ".", item))
    return out


def _path(entry: dict, where: str) -> None:
    """``entry["path"]``: a relative name inside the version folder (schemas/files.py)."""
    path = _field(entry, "path", str, where)
    problem = relative_problem(path)
    if problem:
        raise ValueError(f"{where}path {path!r} {problem}")


def _file(entry: dict, where: str) -> None:
    """A listed file: its path, bytes and sha256."""
    _path(entry, where)
    _field(entry, "bytes", int, where)
    _field(entry, "sha256", str, where)


def check_shape(manifest: dict) -> None:
    """Raise ValueError naming the first value of the wrong type among those readers use: the
    top-level sections, version, lineage, counts, totals, each shard and its files, an index's
    splits, an instruct version's eval files and the fingerprints an ``--if_changed`` run
    compares. Paths are relative names inside the folder."""
    _field(manifest, "format_version", int, "")
    for key in ("dataset", "config_fingerprint"):
        _field(manifest, key, str, "")
    for key in ("version", "created", "sluice", "config", "inputs", "tokenizer", "lineage", "counts", "totals"):
        _field(manifest, key, dict, "")
    _field(manifest["version"], "dataset_folder", str, "version.")
    for key in ("name", "split"):  # folder names (a report's file is named after them)
        name = _field(manifest["version"], key, str, "version.", optional=key == "split")
        if name is not None and (relative_problem(name) or "/" in name):
            raise ValueError(f"version.{key} {name!r} is not a folder name")
    _entries(manifest["lineage"], "parents", dict, "lineage.")
    _field(manifest["lineage"], "inputs_fingerprint", str, "lineage.")
    _entries(manifest, "counts", dict, "")
    for key in manifest["totals"]:
        _field(manifest["totals"], key, int, "totals.")
    for where, shard in _entries(manifest, "shards", list, ""):
        for key in ("shard", *SHARD_COUNTS):
            _field(shard, key, int, where)
        for file_where, entry in _entries(shard, "files", list, where):
            _file(entry, file_where)
            _field(entry, "format", str, file_where)
    for where, split in _entries(manifest, "splits", dict, "", optional=True):
        _path(split, where)
        _field(split, "manifest_sha256", str, where)
        for key in _field(split, "totals", dict, where):
            _field(split["totals"], key, int, f"{where}totals.")
        _field(split, "eval_examples", int, where, optional=True)
        _field(split, "mixture", dict, where, optional=True)
    prints = _field(manifest, "fingerprints", dict, "", optional=True)  # pipelines/fingerprints.py
    for key in ("config", "inputs"):
        if prints is not None:
            _field(prints, key, str, "fingerprints.")
    held = _field(manifest, "eval", dict, "", optional=True)
    for where, entry in _entries(held or {}, "files", list, "eval.", optional=True):
        _file(entry, where)
