"""The Multi curation chain shared by the Multi pipeline and the tokenizer pipeline.

The SQL query has already applied the language, extension, license, star, binary, symlink and size
rules where the rows come from a snapshot or a live query; the row rules check every one of them
again on every row (an export may come from anywhere), then the code quality filter and exact dedup
run as for Mono.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from transforms.dedup.exact import ExactDedup
from transforms.filters.quality import FilterCodeQuality, QualityThresholds
from transforms.sources.github_rows import RowRules, RowsToDocuments
from transforms.sources.github_sql import QueryParams


@dataclasses.dataclass(frozen=True)
class Selection:
    """What the source and selection flags choose, checked before any output is touched."""

    mode: str  # snapshot, query or export
    params: QueryParams
    stars_table: str
    licenses: tuple  # the SPDX allow-list the row rules apply (normalize_allow_list)
    quality: QualityThresholds

    def row_rules(self) -> RowRules:
        p = self.params
        return RowRules(p.languages, frozenset(self.licenses), p.min_bytes, p.max_bytes, p.min_stars)


@dataclasses.dataclass
class CuratedRows:
    documents: beam.PCollection
    rejects: list  # the reject PCollections of the row rules, quality filter and exact dedup
    row_ids: beam.PCollection  # (id, (language, bytes)) of every row read


class CurateMultiRows(beam.PTransform):
    """Pipeline root -> CuratedRows, reading the rows with ``read`` (a Beam read of the query's rows)."""

    def __init__(self, read: beam.PTransform, selection: Selection):
        super().__init__()
        self._read = read
        self._selection = selection

    def expand(self, pbegin):
        rows = pbegin | "ReadRows" >> self._read
        documents, read_rejects, row_ids = rows | "ToDocuments" >> RowsToDocuments(self._selection.row_rules())
        documents, quality_rejects = documents | "FilterQuality" >> FilterCodeQuality(self._selection.quality)
        documents, dedup_rejects = documents | "ExactDedup" >> ExactDedup()
        return CuratedRows(documents, [read_rejects, quality_rejects, dedup_rejects], row_ids)
