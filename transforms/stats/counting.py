"""Counted outcomes: every stage counts what it keeps and why it drops, as Beam Metrics.

Counters live in the namespace ``sluice.<stage>`` and are named by outcome (``kept``) or reject
reason, so the manifest can report counts per stage and reason straight from the job's metrics on
any runner. Rejected records travel on the ``rejects`` tagged output and can be written out.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas.records import Reject
from transforms.stats import progress

NAMESPACE_PREFIX = "sluice."
REJECTS = "rejects"
KEPT = "kept"


def count(stage: str, outcome: str, n: int = 1) -> None:
    """Increment the counter of one outcome of one stage (and the local progress tally)."""
    Metrics.counter(NAMESPACE_PREFIX + stage, outcome).inc(n)
    progress.REPORTER.add(stage, outcome, n)


def reject(record_id: str, stage: str, reason: str, detail: str = "") -> beam.pvalue.TaggedOutput:
    """Count a reject and return it as a tagged output for the stage's ``rejects`` collection."""
    count(stage, reason)
    return beam.pvalue.TaggedOutput(REJECTS, Reject(record_id, stage, reason, detail))


class _PredicateFilterFn(beam.DoFn):
    """Keeps an element when ``check(element)`` returns None; else rejects it with (reason, detail)."""

    def __init__(self, stage, check, record_id):
        self._stage = stage
        self._check = check
        self._record_id = record_id

    def process(self, element):
        verdict = self._check(element)
        if verdict is None:
            count(self._stage, KEPT)
            yield element
        else:
            reason, detail = verdict
            yield reject(self._record_id(element), self._stage, reason, detail)


class CountedFilter(beam.PTransform):
    """A filter stage: ``(kept, rejects)`` from a per-element check, each outcome counted.

    ``check(element) -> None | (reason, detail)`` must be a picklable callable (a module-level
    function or a callable object) holding only its small configuration.
    """

    def __init__(self, stage, check, record_id=lambda element: element.id):
        super().__init__(label=None)
        self._stage = stage
        self._check = check
        self._record_id = record_id

    def expand(self, pcoll):
        outputs = pcoll | beam.ParDo(
            _PredicateFilterFn(self._stage, self._check, self._record_id)
        ).with_outputs(REJECTS, main=KEPT)
        return outputs[KEPT], outputs[REJECTS]
