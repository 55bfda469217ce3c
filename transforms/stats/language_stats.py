"""Per-language numbers for the Multi manifest: rows read, and rejects per stage and reason.

Both are combiners over small keyed records, so their size is (languages x reasons), never the
number of documents. A reject carries only a document id, so its language comes from a join with
the ``(id, (language, bytes))`` record every read row leaves: a CoGroupByKey by id, where each
group holds one id's handful of records.
"""

from __future__ import annotations

import apache_beam as beam

from transforms.streams.write_packed_streams import sum_tuples
from transforms.stats.run_stats import WriteJson


def _reject_languages(group):
    _, grouped = group
    languages = sorted({language for language, _ in grouped["rows"]}) or ["unknown"]
    for stage, reason in grouped["rejects"]:
        yield (languages[0], stage, reason), 1


def _read_entries(tallies):
    return [{"language": lang, "documents": d, "bytes": b} for lang, (d, b) in sorted(tallies)]


def _reject_entries(tallies):
    return [{"language": lang, "stage": stage, "reason": reason, "documents": n}
            for (lang, stage, reason), n in sorted(tallies)]


class WriteLanguageStats(beam.PTransform):
    """``(rows, rejects)`` -> ``read_path`` (per language) and ``rejects_path`` (per language, stage, reason)."""

    def __init__(self, read_path: str, rejects_path: str):
        super().__init__()
        self._read_path = read_path
        self._rejects_path = rejects_path

    def expand(self, pcolls):
        rows, rejects = pcolls
        (rows
         | "ByLanguage" >> beam.Map(lambda kv: (kv[1][0], (1, kv[1][1])))
         | "SumRead" >> beam.CombinePerKey(sum_tuples)
         | "AllRead" >> beam.combiners.ToList()
         | "ReadEntries" >> beam.Map(_read_entries)
         | "WriteRead" >> WriteJson(self._read_path))
        keyed = rejects | "KeyRejects" >> beam.Map(lambda r: (r.id, (r.stage, r.reason)))
        (({"rows": rows, "rejects": keyed}
          | "JoinById" >> beam.CoGroupByKey()
          | "RejectLanguage" >> beam.FlatMap(_reject_languages)
          | "SumRejects" >> beam.CombinePerKey(sum)
          | "AllRejects" >> beam.combiners.ToList()
          | "RejectEntries" >> beam.Map(_reject_entries)
          | "WriteRejects" >> WriteJson(self._rejects_path)))


def languages_report(read: list, kept: list, rejects: list, languages) -> dict:
    """``{language: {read, kept, rejected: {documents, by_reason: {"stage/reason": n}}}}``."""
    report = {}
    names = sorted(set(languages) | {e["language"] for e in read} | {e["language"] for e in rejects}
                   | {lang for lang, _ in kept})
    kept_by = {lang: values for lang, values in kept}
    read_by = {e["language"]: e for e in read}
    for name in names:
        r = read_by.get(name, {"documents": 0, "bytes": 0})
        d, b, t = kept_by.get(name, (0, 0, 0))
        reasons = {f"{e['stage']}/{e['reason']}": e["documents"] for e in rejects if e["language"] == name}
        report[name] = {
            "read": {"documents": r["documents"], "bytes": r["bytes"]},
            "kept": {"documents": d, "bytes": b, "tokens": t},
            "rejected": {"documents": sum(reasons.values()), "by_reason": dict(sorted(reasons.items()))},
        }
    return report
