"""Records that flow between Sluice's stages, and the Parquet schemas of the side outputs.

Plain frozen dataclasses: they pickle cheaply between Beam workers, compare by value in tests, and
need no Beam import, so training jobs can read the Parquet side outputs with the same field names.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import pyarrow as pa


@dataclasses.dataclass(frozen=True)
class RepoSpec:
    """One line of a GitHub manifest: a repository, its metadata and where its archive lies."""

    repo_name: str
    stars: Optional[int]
    license: Optional[str]  # as declared by the manifest, before normalisation
    archive: str  # absolute path or URL (relative paths are resolved against the manifest's folder)
    ref: Optional[str]
    source: str  # "<manifest file>:<1-based line>", for error messages and rejects
    license_spdx: Optional[str] = None  # filled by the license stage
    license_source: Optional[str] = None  # "manifest" or "detected"
    license_confidence: Optional[float] = None  # detector score; 1.0 for a declared license


@dataclasses.dataclass(frozen=True)
class Document:
    """One document (a source file, a Pile line): what every filter, dedup step and the tokenizer sees."""

    id: str  # "<repo_name>:<path inside the archive without the top-level folder>", "<file>:<line>" (NL)
    repo_name: str
    path: str
    text: str
    sha256: str  # of the UTF-8 bytes of text
    stars: Optional[int]
    license: Optional[str]
    license_source: Optional[str]
    license_confidence: Optional[float]
    ref: Optional[str]
    language: str = "python"  # programming language, or "text" for natural language (NL)
    subset: Optional[str] = None  # the Pile's pile_set_name (NL); None for GitHub documents


@dataclasses.dataclass(frozen=True)
class Reject:
    """Why a record (a manifest line, a repository, an archive member or a document) was dropped."""

    id: str
    stage: str
    reason: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class TokenizedDocument:
    """A kept document's token ids, ready for the global shuffle."""

    id: str
    tokens: bytes  # little-endian int32 token ids (compact to shuffle; numpy views it without a copy)


DOCUMENT_PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("repo_name", pa.string()),
        ("path", pa.string()),
        ("language", pa.string()),
        ("license", pa.string()),
        ("license_source", pa.string()),
        ("license_confidence", pa.float64()),
        ("stars", pa.int64()),
        ("ref", pa.string()),
        ("sha256", pa.string()),
        ("text", pa.large_string()),
        ("subset", pa.string()),  # last, so positional readers of older files are unaffected
    ]
)

REJECT_PARQUET_SCHEMA = pa.schema(
    [("id", pa.string()), ("stage", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def is_int64(value) -> bool:
    """Whether ``value`` is an integer (not a bool) that fits the int64 columns above (``stars``).

    JSON and Python integers are unbounded, and JSON as Python reads it also has NaN and Infinity:
    a reader checks every integer field with this before it becomes a record, since a value
    outside int64 would only fail when the Parquet side outputs are written, ending the run.
    """
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def document_row(doc: Document) -> dict:
    """The Parquet row of a curated document (DOCUMENT_PARQUET_SCHEMA)."""
    return {name: getattr(doc, name) for name in DOCUMENT_PARQUET_SCHEMA.names}


def reject_row(reject: Reject) -> dict:
    """The Parquet row of a reject (REJECT_PARQUET_SCHEMA)."""
    return dataclasses.asdict(reject)
