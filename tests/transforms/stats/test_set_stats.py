"""Per-set tallies: a direct count of the real samples, and the report the driver derives from them."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import zstandard

from transforms.sources.pile_reader import pile_document
from transforms.stats.run_stats import read_json
from transforms.stats.set_stats import TallyBySet, WriteSetStats, sets_report

NL = Path(__file__).resolve().parents[3] / "samples" / "nl"


def sample_docs():
    docs = []
    for path in sorted(NL.rglob("*.jsonl.zst")):
        with path.open("rb") as handle:
            content = zstandard.ZstdDecompressor().stream_reader(handle).read()
        for number, line in enumerate(content.splitlines()):
            record = json.loads(line)
            docs.append(pile_document(path.name, number, record["text"], record["meta"]["pile_set_name"],
                                      record["text"].encode()))
    return docs


def test_tallies_match_a_direct_count(beam_helpers, tmp_path):
    new_pipeline, run, _ = beam_helpers
    docs = sample_docs()
    wiki = [d for d in docs if d.subset == "Wikipedia (en)"]
    p = new_pipeline()
    read = p | "Read" >> beam.Create(docs)
    kept = p | "Kept" >> beam.Create(wiki[:5])
    ((read | "TallyRead" >> TallyBySet("read"), kept | "TallyKept" >> TallyBySet("kept"))
     | beam.Flatten() | WriteSetStats(str(tmp_path / "sets.json")))
    run(p)
    entries = read_json(str(tmp_path / "sets.json"))
    direct = {}
    for d in docs:
        n, b = direct.get(d.subset, (0, 0))
        direct[d.subset] = (n + 1, b + len(d.text.encode()))
    assert {e["set"]: (e["documents"], e["bytes"]) for e in entries if e["boundary"] == "read"} == direct
    report = sets_report(entries, ["read", "kept"])
    assert set(report) == set(direct)
    five = sum(len(d.text.encode()) for d in wiki[:5])
    assert report["Wikipedia (en)"]["kept"] == {"documents": 5, "bytes": five}
    assert report["ArXiv"]["kept"] == {"documents": 0, "bytes": 0}
    assert report["ArXiv"]["rejected"] == report["ArXiv"]["read"] == {"documents": direct["ArXiv"][0],
                                                                      "bytes": direct["ArXiv"][1]}


def test_report_splits_rejections_by_stage():
    entries = [
        {"set": "Github", "boundary": "read", "documents": 10, "bytes": 100},
        {"set": "Github", "boundary": "set_filter", "documents": 10, "bytes": 100},
        {"set": "Github", "boundary": "exact_dedup", "documents": 7, "bytes": 80},
        {"set": "Pile-CC", "boundary": "read", "documents": 4, "bytes": 40},
    ]
    report = sets_report(entries, ["read", "set_filter", "exact_dedup"])
    assert report["Github"] == {
        "read": {"documents": 10, "bytes": 100}, "kept": {"documents": 7, "bytes": 80},
        "rejected": {"documents": 3, "bytes": 20},
        "rejected_by_stage": {"set_filter": {"documents": 0, "bytes": 0},
                              "exact_dedup": {"documents": 3, "bytes": 20}},
    }
    assert report["Pile-CC"]["rejected_by_stage"]["set_filter"] == {"documents": 4, "bytes": 40}
    assert report["Pile-CC"]["kept"] == {"documents": 0, "bytes": 0}
