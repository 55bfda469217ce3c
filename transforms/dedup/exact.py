"""Exact dedup: one document per distinct content (sha256), the smallest id kept.

Documents are grouped by content hash. A group is iterated twice, first for the smallest id and
then to emit, so only one document is held at a time: a group of a million identical empty
``__init__.py`` files costs no memory (Beam iterables are re-iterable and paged on Dataflow).
"""

from __future__ import annotations

import apache_beam as beam

from transforms.stats.counting import KEPT, REJECTS, count, reject

STAGE = "exact_dedup"


class _KeepSmallestIdFn(beam.DoFn):
    def process(self, group):
        _, docs = group
        keep = min(doc.id for doc in docs)
        kept = False
        for doc in docs:
            if doc.id == keep and not kept:  # the same id twice (a repo listed twice) is kept once
                kept = True
                count(STAGE, KEPT)
                yield doc
            else:
                yield reject(doc.id, STAGE, "exact_duplicate", keep)


class ExactDedup(beam.PTransform):
    """``(documents, rejects)`` with every exact duplicate removed, naming the id it duplicates."""

    def expand(self, docs):
        deduped = (
            docs
            | "KeyByContent" >> beam.Map(lambda doc: (doc.sha256, doc))
            | "GroupByContent" >> beam.GroupByKey()
            | "KeepSmallestId" >> beam.ParDo(_KeepSmallestIdFn()).with_outputs(REJECTS, main=KEPT)
        )
        return deduped[KEPT], deduped[REJECTS]
