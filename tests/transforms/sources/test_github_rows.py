"""Multi rows to documents: every row, whatever an export holds, is a writable document or a counted
reject (hypothesis), and values Parquet's int64 cannot hold are rejects, not a failed write."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import DOCUMENT_PARQUET_SCHEMA, Document, Reject, document_row
from transforms.sources.github_rows import ROWS, RowRules, _RowToDocumentFn
from tests.transforms.sources.strategies import SETTINGS
from transforms.stats.counting import REJECTS

RULES = RowRules(languages=("go", "python"), licenses=frozenset({"MIT", "Apache-2.0"}), min_bytes=1,
                 max_bytes=1 << 20)
GOOD = {"id": "c1", "repo_name": "o/r", "path": "a.py", "language": "python", "license": "mit",
        "stars": 12, "content": "x = 1\n"}


def outcome(row: dict):
    """(the document or the reject, the row tally) of one row; fails unless exactly one of each."""
    outputs = list(_RowToDocumentFn(RULES).process(row))
    tallies = [o.value for o in outputs if getattr(o, "tag", None) == ROWS]
    rejects = [o.value for o in outputs if getattr(o, "tag", None) == REJECTS]
    documents = [o for o in outputs if isinstance(o, Document)]
    assert len(tallies) == 1 and len(rejects) + len(documents) == 1 and len(outputs) == 2, outputs
    return (documents or rejects)[0], tallies[0]


def test_a_good_row_is_a_document():
    doc, tally = outcome(GOOD)
    assert (doc.id, doc.stars, doc.license, doc.language) == ("o/r:a.py", 12, "MIT", "python")
    assert tally == ("o/r:a.py", ("python", 6))


@pytest.mark.parametrize("fields, reason", [
    (dict(stars=10**30), "bad_stars"),
    (dict(stars=1 << 63), "bad_stars"),
    (dict(stars=-1), "bad_stars"),
    (dict(stars=True), "bad_stars"),
    (dict(stars=math.nan), "bad_stars"),
    (dict(stars=math.inf), "bad_stars"),
    (dict(stars="12"), "bad_stars"),
    (dict(license=7), "bad_field"),
    (dict(repo_name=5), "bad_field"),
    (dict(path=b"a.py"), "bad_field"),
    (dict(content=b"x = 1\n"), "bad_field"),
    (dict(content="lone \ud800 surrogate"), "invalid_text"),
    (dict(content=None), "missing_field"),
    (dict(repo_name=""), "missing_field"),
    (dict(language=["python"]), "language_not_selected"),
])
def test_bad_values_are_rejects(fields, reason):
    reject, _ = outcome({**GOOD, **fields})
    assert isinstance(reject, Reject) and (reject.stage, reject.reason) == ("read", reason)


STARRED = RowRules(languages=("go", "python"), licenses=frozenset({"MIT"}), min_bytes=1, max_bytes=1 << 20,
                   min_stars=10)


@pytest.mark.parametrize("fields, reason", [
    # stars (--min_stars): too few, or unknown; the boundary passes
    (dict(stars=9), "too_few_stars"),
    (dict(stars=None), "stars_unknown"),
    (dict(stars=10), None),
    # extensions: the path's extension must give the row's language
    (dict(path="a.txt"), "extension_not_selected"),
    (dict(path="Makefile"), "extension_not_selected"),
    (dict(path="a.java"), "extension_not_selected"),  # java is not selected
    (dict(path="m.go"), "language_mismatch"),  # go is selected, but the row says python
    (dict(path="A.PY"), None),  # extensions are case-insensitive, as in the query
    # binary: the column, or a NUL byte in the content (Mono's rule)
    (dict(binary=True), "binary"),
    (dict(content="x = 1\x00\n"), "binary"),
    (dict(binary=False), None),
    (dict(binary="no"), "bad_field"),
    # symbolic links: any non-null symlink_target
    (dict(symlink_target="../b.py"), "link"),
    (dict(symlink_target=""), "link"),
    (dict(symlink_target=None), None),
])
def test_every_selection_rule_is_checked_on_the_row(fields, reason):
    outputs = list(_RowToDocumentFn(STARRED).process({**GOOD, **fields}))
    rejects = [o.value for o in outputs if getattr(o, "tag", None) == REJECTS]
    documents = [o for o in outputs if isinstance(o, Document)]
    if reason is None:
        assert len(documents) == 1 and not rejects, outputs
    else:
        assert not documents and [(r.stage, r.reason) for r in rejects] == [("read", reason)], outputs


def test_no_star_threshold_keeps_rows_without_stars():
    doc, _ = outcome({**GOOD, "stars": None})
    assert doc.stars is None


def test_stars_at_the_int64_bound_are_kept():
    doc, _ = outcome({**GOOD, "stars": (1 << 63) - 1})
    assert doc.stars == (1 << 63) - 1


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
)
_ROWS = st.fixed_dictionaries({}, optional={
    "id": _VALUES,
    "repo_name": st.one_of(_VALUES, st.sampled_from(["o/r", "a/b"])),
    "path": st.one_of(_VALUES, st.sampled_from(["a.py", "m.go", "x.c"])),
    "language": st.one_of(_VALUES, st.sampled_from(["python", "go", "c"])),
    "license": st.one_of(_VALUES, st.sampled_from(["mit", "apache-2.0", "gpl-3.0", "MIT OR GPL-3.0"])),
    "stars": st.one_of(_VALUES, st.integers(min_value=0, max_value=(1 << 63) - 1)),
    "content": st.one_of(_VALUES, st.text(min_size=1)),
})


@settings(**SETTINGS)
@given(row=st.one_of(_ROWS, st.builds(lambda r: {**GOOD, **r}, _ROWS)))
def test_any_row_is_a_writable_document_or_a_reject(row):
    result, (doc_id, (language, nbytes)) = outcome(row)
    assert isinstance(doc_id, str) and isinstance(language, str) and isinstance(nbytes, int)
    if isinstance(result, Document):  # it must survive the Parquet write of the documents
        pa.Table.from_pylist([document_row(result)], schema=DOCUMENT_PARQUET_SCHEMA)
        assert result.text.encode("utf-8") and RULES.min_bytes <= nbytes <= RULES.max_bytes
    else:
        assert result.stage == "read" and result.reason
