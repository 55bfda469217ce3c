"""File selection by extension, over the real files of a sample archive and crafted names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Document
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.filters.file_selection import SelectFiles

ARCHIVES = Path(__file__).resolve().parents[3] / "samples" / "mono" / "archives"


def _doc(path: str, text: str = "x\n") -> Document:
    return Document(id=f"o/r:{path}", repo_name="o/r", path=path, text=text,
                    sha256=hashlib.sha256(text.encode()).hexdigest(), stars=1, license="MIT",
                    license_source="manifest", license_confidence=1.0, ref=None)


def test_select_python_files_of_a_real_archive(beam_helpers):
    new_pipeline, run, counters = beam_helpers
    paths = [m.path for m in iter_members(str(ARCHIVES / "requests-2.32.3.tar.gz"), ArchiveLimits())]
    docs = [_doc(p) for p in paths]
    py = [d for d in docs if d.path.endswith(".py")]
    other = [d for d in docs if not d.path.endswith(".py")]
    assert len(py) >= 20 and len(other) >= 5
    assert {"LICENSE", "setup.cfg", "README.md"} <= {d.path for d in other}

    p = new_pipeline()
    kept, rejects = p | beam.Create(docs) | SelectFiles()
    assert_that(kept, equal_to(py), label="kept")
    assert_that(rejects | beam.Map(lambda r: r.id), equal_to([d.id for d in other]), label="ids")
    assert_that(
        rejects | beam.Filter(lambda r: r.id in ("o/r:LICENSE", "o/r:setup.cfg", "o/r:README.md"))
        | beam.Map(lambda r: (r.id, r.stage, r.reason, r.detail)),
        equal_to([("o/r:LICENSE", "select", "extension_not_selected", "(none)"),
                  ("o/r:setup.cfg", "select", "extension_not_selected", ".cfg"),
                  ("o/r:README.md", "select", "extension_not_selected", ".md")]),
        label="details")
    result = run(p)
    assert counters(result, "select") == {"kept": len(py), "extension_not_selected": len(other)}


def test_select_files_extension_spelling_and_edge_names(beam_helpers):
    new_pipeline, run, _ = beam_helpers
    docs = [_doc(p) for p in ("a.py", "B.PY", "c.pyi", "d.pyc", "e.py.bak", "scripts/copy",
                              "pkg.v2/Makefile", "x.JS", ".bashrc")]
    p = new_pipeline()
    kept, rejects = p | beam.Create(docs) | SelectFiles(["PY", ".pyi", "js"])
    assert_that(kept | beam.Map(lambda d: d.path), equal_to(["a.py", "B.PY", "c.pyi", "x.JS"]),
                label="kept")
    assert_that(
        rejects | beam.Map(lambda r: (r.id, r.detail)),
        equal_to([("o/r:d.pyc", ".pyc"), ("o/r:e.py.bak", ".bak"), ("o/r:scripts/copy", "(none)"),
                  ("o/r:pkg.v2/Makefile", "(none)"), ("o/r:.bashrc", ".bashrc")]),
        label="rejects")
    run(p)
