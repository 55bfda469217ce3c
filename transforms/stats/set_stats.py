"""Documents and bytes per Pile set at each stage boundary, for the manifest's ``sets`` section.

Each boundary tallies the documents that left a stage, per set, with a combiner (partial sums on
every worker, one small record per set and boundary); the driver turns consecutive boundaries
into what each stage removed. Bytes are the UTF-8 bytes of the text.
"""

from __future__ import annotations

import apache_beam as beam

from transforms.stats.run_stats import WriteJson


def _tally(doc, boundary):
    return (doc.subset, boundary), (1, len(doc.text.encode("utf-8")))


def _add_pairs(pairs):
    documents = nbytes = 0
    for d, b in pairs:
        documents += d
        nbytes += b
    return documents, nbytes


class TallyBySet(beam.PTransform):
    """Documents -> ``((set, boundary), (documents, bytes))``, one element per set."""

    def __init__(self, boundary: str):
        super().__init__()
        self._boundary = boundary

    def expand(self, docs):
        return (docs
                | "Tally" >> beam.Map(_tally, self._boundary)
                | "SumPerSet" >> beam.CombinePerKey(_add_pairs))


def _entries(tallies):
    return [{"set": s, "boundary": b, "documents": d, "bytes": n}
            for (s, b), (d, n) in sorted(tallies, key=lambda t: (str(t[0][0]), t[0][1]))]


class WriteSetStats(beam.PTransform):
    """All boundaries' tallies (one flattened PCollection) -> one JSON list of sets x boundaries."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, tallies):
        return (tallies
                | "All" >> beam.combiners.ToList()
                | "Entries" >> beam.Map(_entries)
                | "Write" >> WriteJson(self._path))


def sets_report(entries: list, boundaries: list) -> dict:
    """``{set: {read, kept, rejected, rejected_by_stage: {stage: ...}}}``, each ``{documents, bytes}``.

    ``boundaries`` in pipeline order: the first is what was read, each next one what its stage
    kept, the last what reached the tokenizer.
    """
    at: dict = {}
    for entry in entries:
        at.setdefault(entry["set"], {})[entry["boundary"]] = (entry["documents"], entry["bytes"])

    def pair(value):
        return {"documents": value[0], "bytes": value[1]}

    report = {}
    for name in sorted(at, key=str):
        values = [at[name].get(boundary, (0, 0)) for boundary in boundaries]
        removed = {
            stage: pair((before[0] - after[0], before[1] - after[1]))
            for stage, before, after in zip(boundaries[1:], values, values[1:])
        }
        first, last = values[0], values[-1]
        report[name] = {
            "read": pair(first), "kept": pair(last),
            "rejected": pair((first[0] - last[0], first[1] - last[1])),
            "rejected_by_stage": removed,
        }
    return report
