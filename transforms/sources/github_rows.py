"""Rows of the Multi query (from DuckDB's staged Parquet, BigQuery or an export) -> Documents.

The query already applied the license, binary, extension and size rules; this stage checks them
again row by row, because an export may have been made with other parameters than this run's
flags, and a row that breaks one is a counted reject of stage ``read``, never silently dropped.
Every row also leaves ``(document id, (language, bytes))`` on a side output: the per-language
``read`` tally and the join that gives each reject its language (``transforms.stats.language_stats``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import apache_beam as beam

from schemas.records import Document
from transforms.stats.counting import KEPT, REJECTS, count, reject
from transforms.stats import histograms
from transforms.filters.licenses import is_allowed, normalize_license

STAGE = "read"
ROWS = "rows"  # tagged output: (document id, (language, UTF-8 bytes)) for every row
LICENSE_SOURCE = "github_repos"  # licenses.license, GitHub's detection


@dataclasses.dataclass(frozen=True)
class RowRules:
    languages: tuple
    licenses: frozenset  # SPDX allow-list (normalize_allow_list)
    min_bytes: int
    max_bytes: int


class _RowToDocumentFn(beam.DoFn):
    def __init__(self, rules: RowRules):
        self._rules = rules

    def process(self, row):
        repo, path = row.get("repo_name"), row.get("path")
        language, text = row.get("language"), row.get("content")
        doc_id = f"{repo}:{path}" if repo and path else f"content:{row.get('id')}"
        nbytes = len(text.encode("utf-8")) if isinstance(text, str) else 0
        yield beam.pvalue.TaggedOutput(ROWS, (doc_id, (language or "unknown", nbytes)))
        histograms.observe(histograms.DOCUMENT_BYTES_READ, nbytes)
        verdict = self._check(repo, path, language, text, nbytes, row.get("license"))
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

    def _check(self, repo, path, language, text, nbytes, license_key):
        r = self._rules
        if not repo or not path:
            return "missing_field", "repo_name/path"
        if not isinstance(text, str):
            return "missing_field", "content"
        if language not in r.languages:
            return "language_not_selected", str(language)
        spdx = normalize_license(license_key)
        if spdx is None:
            return "license_unknown", str(license_key)
        if not is_allowed(spdx, r.licenses):
            return "license_not_allowed", spdx
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
