"""Exact dedup: one document per content hash, the smallest id kept, rejects naming it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Document, Reject
from transforms.sources.archive_reader import decode_source
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.dedup.exact import ExactDedup

ARCHIVES = Path(__file__).resolve().parents[3] / "samples" / "mono" / "archives"


def _doc(doc_id: str, text: str) -> Document:
    repo, path = doc_id.split(":", 1)
    return Document(id=doc_id, repo_name=repo, path=path, text=text,
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), stars=3,
                    license="MIT", license_source="manifest", license_confidence=1.0, ref=None)


def test_duplicates_keep_the_smallest_id(beam_helpers):
    new_pipeline, run, counters = beam_helpers
    docs = [
        _doc("z/repo:a.py", "same = 1\n"),
        _doc("a/repo:z.py", "same = 1\n"),  # smallest id of its group, though listed second
        _doc("m/repo:b.py", "same = 1\n"),
        _doc("m/repo:c.py", "same = 1"),  # no final newline: other content
        _doc("b/repo:u.py", "unique = 2\n"),
    ]
    p = new_pipeline()
    kept, rejects = p | beam.Create(docs) | ExactDedup()
    assert_that(kept, equal_to([docs[1], docs[3], docs[4]]), label="kept")
    assert_that(rejects, equal_to([
        Reject("z/repo:a.py", "exact_dedup", "exact_duplicate", "a/repo:z.py"),
        Reject("m/repo:b.py", "exact_dedup", "exact_duplicate", "a/repo:z.py"),
    ]), label="rejects")
    result = run(p)
    assert counters(result, "exact_dedup") == {"kept": 3, "exact_duplicate": 2}


def test_large_group_of_identical_files_from_real_archives(beam_helpers):
    new_pipeline, run, counters = beam_helpers
    # Every real empty __init__.py of the samples plus many copies make one group; the other
    # real .py files up to 8 KiB (kept small for speed) keep one document per content.
    empties, others = [], {}
    for archive in sorted(ARCHIVES.glob("*.tar.gz")):
        repo = archive.name.removesuffix(".tar.gz")
        for member in iter_members(str(archive), ArchiveLimits(max_file_bytes=8192),
                                   want=lambda p: p.endswith(".py")):
            if member.data is None:
                continue
            text, _ = decode_source(member.data)
            doc = _doc(f"{repo}:{member.path}", text)
            (empties if text == "" else others.setdefault(doc.sha256, [])).append(doc)
    assert len(empties) >= 5 and len(others) >= 200
    empties += [_doc(f"copy/{i:04d}:__init__.py", "") for i in range(300)]
    docs = empties + [d for group in others.values() for d in group]
    keep = min(d.id for d in empties)
    expected_kept = [next(d for d in empties if d.id == keep)] + [
        min(group, key=lambda d: d.id) for group in others.values()]
    expected_rejects = [Reject(d.id, "exact_dedup", "exact_duplicate", keep)
                        for d in empties if d.id != keep] + [
        Reject(d.id, "exact_dedup", "exact_duplicate", min(x.id for x in group))
        for group in others.values() for d in group if d.id != min(x.id for x in group)]
    assert len(expected_rejects) >= len(empties) - 1

    p = new_pipeline()
    kept, rejects = p | beam.Create(docs) | ExactDedup()
    # Compared as sortable tuples: equal_to falls back to a quadratic match on unorderable values.
    assert_that(kept | beam.Map(lambda d: (d.id, d.sha256)),
                equal_to([(d.id, d.sha256) for d in expected_kept]), label="kept")
    assert_that(rejects | beam.Map(lambda r: (r.id, r.stage, r.reason, r.detail)),
                equal_to([(r.id, r.stage, r.reason, r.detail) for r in expected_rejects]),
                label="rejects")
    result = run(p)
    assert counters(result, "exact_dedup") == {
        "kept": len(expected_kept), "exact_duplicate": len(expected_rejects)}
    assert len(expected_kept) + len(expected_rejects) == len(docs)


def test_same_document_twice_is_kept_once(beam_helpers):
    # The same repository listed twice in a manifest (or a path repeated inside a tar) gives two
    # documents with the same id and content; the output must still hold that content once.
    new_pipeline, run, counters = beam_helpers
    doc = _doc("o/r:a.py", "x = 1\n")
    other = _doc("o/r:b.py", "x = 1\n")
    p = new_pipeline()
    kept, rejects = p | beam.Create([doc, doc, other]) | ExactDedup()
    assert_that(kept, equal_to([doc]), label="kept")
    assert_that(rejects | beam.Map(lambda r: (r.reason, r.detail)),
                equal_to([("exact_duplicate", "o/r:a.py")] * 2), label="rejects")
    result = run(p)
    assert counters(result, "exact_dedup") == {"kept": 1, "exact_duplicate": 2}
