"""Rows of the Multi query (from DuckDB's staged Parquet, BigQuery or an export) -> Documents.

The query already applied every selection rule (languages, extensions, licenses, sizes, binary,
symbolic links, stars); this stage checks each again row by row, because an export may have been
made with other parameters than this run's flags (or by another query), and a row that breaks one
is a counted reject of stage ``read`` with the rule's own reason, never silently dropped. Where a
rule is Mono's too, the reason and the rule are Mono's: ``link``, ``binary`` (archive_reader's
``is_binary``), ``extension_not_selected``, ``too_few_stars`` and ``stars_unknown`` (the star filter's
``star_verdict``). The optional columns ``binary`` and ``symlink_target`` (the github_repos tables')
are checked where an export carries them; the query's own result does not.
Every row also leaves ``(document id, (language, bytes))`` on a side output: the per-language
``read`` tally and the join that gives each reject its language (``transforms.stats.language_stats``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import apache_beam as beam

from schemas.records import Document, is_int64
from transforms.stats.counting import KEPT, REJECTS, count, reject
from transforms.stats import histograms
from transforms.filters.licenses import is_allowed, normalize_license
from transforms.filters.stars import star_verdict
from transforms.sources.archive_reader import BINARY, is_binary
from transforms.sources.github_sql import language_of

STAGE = "read"
ROWS = "rows"  # tagged output: (document id, (language, UTF-8 bytes)) for every row
LICENSE_SOURCE = "github_repos"  # licenses.license, GitHub's detection


@dataclasses.dataclass(frozen=True)
class RowRules:
    languages: tuple
    licenses: frozenset  # SPDX allow-list (normalize_allow_list)
    min_bytes: int
    max_bytes: int
    min_stars: int = 0


def _utf8_size(text) -> int | None:
    """UTF-8 bytes of a row's content; None when it is no string or not encodable (a lone surrogate)."""
    if not isinstance(text, str):
        return None
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _file_kind(row):
    """(reason, detail) for a row that is no regular text file: a symbolic link (a non-null
    ``symlink_target``), or binary (a true ``binary`` column, or content with a NUL byte); None
    for a text file. A ``binary`` that is not a bool is a bad field, not a guess."""
    target = row.get("symlink_target")
    if target is not None:
        return "link", f"{row['path'][-80:]} -> {str(target)[:80]}"
    flag = row.get("binary")
    if flag is not None and not isinstance(flag, bool):
        return "bad_field", f"binary: {type(flag).__name__}"
    if flag or is_binary(row["content"]):
        return BINARY, "binary column" if flag else "NUL byte in content"
    return None


class _RowToDocumentFn(beam.DoFn):
    """Any row (a dict of whatever an export holds) -> a Document or a counted reject."""

    def __init__(self, rules: RowRules):
        self._rules = rules

    def process(self, row):
        repo, path = row.get("repo_name"), row.get("path")
        language, text = row.get("language"), row.get("content")
        doc_id = f"{repo}:{path}" if repo and path else f"content:{row.get('id')}"
        nbytes = _utf8_size(text)
        tally = language if isinstance(language, str) and language else "unknown"
        yield beam.pvalue.TaggedOutput(ROWS, (doc_id, (tally, nbytes or 0)))
        histograms.observe(histograms.DOCUMENT_BYTES_READ, nbytes or 0)
        verdict = self._check(row, nbytes)
        if verdict is not None:
            yield reject(doc_id, STAGE, *verdict)
            return
        count(STAGE, KEPT)
        yield Document(
            id=doc_id, repo_name=repo, path=path, text=text,
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), stars=row.get("stars"),
            license=normalize_license(row.get("license")), license_source=LICENSE_SOURCE,
            license_confidence=None, ref=None, language=language,
        )

    def _check(self, row, nbytes):
        r = self._rules
        for name, missing in (("repo_name", "repo_name/path"), ("path", "repo_name/path"), ("content", "content")):
            value = row.get(name)
            if value is None or (value == "" and name != "content"):  # empty content: a size reject
                return "missing_field", missing
            if not isinstance(value, str):
                return "bad_field", f"{name}: {type(value).__name__}"
        if nbytes is None:
            return "invalid_text", "content is not encodable as UTF-8 (a lone surrogate)"
        file_kind = _file_kind(row)
        if file_kind is not None:
            return file_kind
        language = row.get("language")
        if language not in r.languages:
            return "language_not_selected", str(language)[:100]
        by_extension = language_of(row["path"], r.languages)
        if by_extension is None:
            return "extension_not_selected", row["path"][-100:]
        if by_extension != language:
            return "language_mismatch", f"{language} row, {by_extension} by extension: {row['path'][-80:]}"
        license_key = row.get("license")
        if license_key is not None and not isinstance(license_key, str):
            return "bad_field", f"license: {type(license_key).__name__}"
        spdx = normalize_license(license_key)
        if spdx is None:
            return "license_unknown", str(license_key)[:100]
        if not is_allowed(spdx, r.licenses):
            return "license_not_allowed", spdx
        stars = row.get("stars")
        if stars is not None and not (is_int64(stars) and stars >= 0):
            return "bad_stars", repr(stars)[:100]
        verdict = star_verdict(stars, r.min_stars)
        if verdict is not None:
            return verdict
        if not r.min_bytes <= nbytes <= r.max_bytes:
            return "size_out_of_bounds", str(nbytes)
        return None


class RowsToDocuments(beam.PTransform):
    """Query rows (dicts) -> ``(documents, rejects, rows)``; ``rows`` as ``ROWS`` above."""

    def __init__(self, rules: RowRules):
        super().__init__()
        self._rules = rules

    def expand(self, rows):
        out = rows | beam.ParDo(_RowToDocumentFn(self._rules)).with_outputs(REJECTS, ROWS, main=KEPT)
        return out[KEPT], out[REJECTS], out[ROWS]
