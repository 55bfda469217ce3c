"""Pile set filter: include/exclude by official name, unknown names rejected, on real sample documents."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import apache_beam as beam
import pytest
import zstandard
from apache_beam.testing.util import assert_that, equal_to

from schemas.pile import PILE_SET_NAMES, canonical_set_names
from schemas.records import Reject
from transforms.sources.pile_reader import pile_document
from transforms.filters.pile_sets import FilterSets

VAL = Path(__file__).resolve().parents[3] / "samples" / "nl" / "val.jsonl.zst"


@pytest.fixture(scope="module")
def sample_docs():
    with VAL.open("rb") as handle:
        content = zstandard.ZstdDecompressor().stream_reader(handle).read()
    docs = []
    for number, line in enumerate(content.splitlines()):
        record = json.loads(line)
        docs.append(pile_document(VAL.name, number, record["text"], record["meta"]["pile_set_name"],
                                  record["text"].encode()))
    assert len({d.subset for d in docs}) == 4
    return docs


def test_official_names_are_the_22_sets():
    assert len(PILE_SET_NAMES) == len(set(PILE_SET_NAMES)) == 22
    assert {"Pile-CC", "Github", "Wikipedia (en)", "DM Mathematics", "Gutenberg (PG-19)"} <= set(PILE_SET_NAMES)


def test_names_match_case_insensitively_and_unknown_names_list_all_sets():
    assert canonical_set_names(["github", "WIKIPEDIA (EN)", "Github"]) == ("Github", "Wikipedia (en)")
    with pytest.raises(ValueError) as err:
        canonical_set_names(["Wikipedia", "Pile-CC"])
    message = str(err.value)
    assert "'Wikipedia'" in message and "\n" not in message
    assert all(name in message for name in PILE_SET_NAMES)


@pytest.mark.parametrize("include, exclude", [
    ((), ()),
    (("Wikipedia (en)", "arxiv"), ()),
    ((), ("DM Mathematics",)),
    (("Pile-CC", "ArXiv"), ("ArXiv",)),
])
def test_keeps_the_selected_sets(beam_helpers, sample_docs, include, exclude):
    new_pipeline, run, counters = beam_helpers
    inc, exc = set(canonical_set_names(include)), set(canonical_set_names(exclude))
    selected = [d for d in sample_docs if (not inc or d.subset in inc) and d.subset not in exc]
    dropped = [Reject(d.id, "set_filter", "set_excluded", d.subset) for d in sample_docs if d not in selected]
    p = new_pipeline()
    kept, rejects = p | beam.Create(sample_docs) | FilterSets(include, exclude)
    assert_that(kept, equal_to(selected), label="kept")
    assert_that(rejects, equal_to(dropped), label="rejects")
    result = run(p)
    assert counters(result, "set_filter") == {k: v for k, v in
                                              {"kept": len(selected), "set_excluded": len(dropped)}.items() if v}


def test_a_name_outside_the_22_sets_is_rejected_whatever_the_selection(beam_helpers, sample_docs):
    new_pipeline, run, _ = beam_helpers
    odd = dataclasses.replace(sample_docs[0], id="x.jsonl:0", subset="Books1")
    p = new_pipeline()
    _, rejects = p | beam.Create([odd, sample_docs[1]]) | FilterSets((), ("Github",))
    assert_that(rejects, equal_to([Reject("x.jsonl:0", "set_filter", "unknown_set", "Books1")]))
    run(p)
