"""ReadRepoArchives in a pipeline: documents from a real archive, rejects for hostile members and
for a truncated archive (whose files read in full are withdrawn, not emitted), and the per-archive
fingerprint tuples."""

from __future__ import annotations

import collections
import dataclasses
import gzip
import hashlib
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Document, RepoSpec
from transforms.sources.archive_reader import ReadRepoArchives, decode_source
from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, iter_members

ROOT = Path(__file__).resolve().parents[3]
ARCHIVES = ROOT / "samples" / "mono" / "archives"


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"x = 1\n", ("x = 1\n", None)),
        (b"", ("", None)),
        ("s = 'caf\u00e9 \u2603'\n".encode("utf-8"), ("s = 'caf\u00e9 \u2603'\n", None)),
        (b"\xef\xbb\xbfx = 1\n", ("\ufeffx = 1\n", None)),
        ("caf\u00e9".encode("latin-1"), (None, "invalid_utf8")),
        (b"\xc3", (None, "invalid_utf8")),
        (b"a\x00b", (None, "binary")),
        (b"\xff\x00", (None, "binary")),
    ],
)
def test_decode_source(data, expected):
    assert decode_source(data) == expected


def _repo(name, archive, **kw):
    return RepoSpec(repo_name=name, stars=kw.pop("stars", 5), license=None, archive=str(archive),
                    ref="v1", source="m:1", **kw)


def test_read_repo_archives_pipeline(tmp_path, make_tar, beam_helpers):
    new_pipeline, run, counters = beam_helpers
    tomli_path = ARCHIVES / "tomli-2.0.1.tar.gz"
    tomli = _repo("hukkin/tomli", tomli_path, license_spdx="MIT", license_source="detected",
                  license_confidence=0.97)
    hostile_path = make_tar("hostile.tar.gz", [
        ("h/ok.py", b"ok = True\n"),
        ("h/../x.py", b"x\n"),
        ("h/link", b"", tarfile.SYMTYPE, "ok.py"),
        ("h/big.py", b"#" * 40_000),
        ("h/latin.py", "\u00e9\n".encode("latin-1")),
        ("h/nul.bin", b"\x00\x01"),
    ])
    hostile = _repo("evil/hostile", hostile_path)
    click_bytes = (ARCHIVES / "click-8.1.7.tar.gz").read_bytes()
    cut_path = tmp_path / "click-cut.tar.gz"
    cut_path.write_bytes(click_bytes[: len(click_bytes) // 2])
    cut = _repo("pallets/click", cut_path)
    missing = _repo("gone/missing", tmp_path / "missing.tar.gz")
    limits = ArchiveLimits(max_file_bytes=32 * 1024)  # tomli fits, big.py does not

    expected_docs = []
    for member in iter_members(str(tomli_path), limits):
        text, _ = decode_source(member.data)
        expected_docs.append(Document(
            id=f"hukkin/tomli:{member.path}", repo_name="hukkin/tomli", path=member.path, text=text,
            sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), stars=5, license="MIT",
            license_source="detected", license_confidence=0.97, ref="v1"))
    assert len(expected_docs) == 9 and all(d.text for d in expected_docs)
    expected_docs.append(dataclasses.replace(
        expected_docs[0], id="evil/hostile:ok.py", repo_name="evil/hostile", path="ok.py",
        text="ok = True\n", sha256=hashlib.sha256(b"ok = True\n").hexdigest(), license=None,
        license_source=None, license_confidence=None))
    intact, click_rejects = [], []
    try:
        for member in iter_members(str(cut_path), limits):
            reason = member.reason or decode_source(member.data)[1]
            if reason is None:
                intact.append(f"pallets/click:{member.path}")
            else:
                click_rejects.append((f"pallets/click:{member.path}", "read", reason))
    except ArchiveError as err:
        cut_reason = err.reason
    assert len(intact) > 10 and {r[2] for r in click_rejects} == {"binary", "too_large"}
    assert cut_reason == "archive_truncated"

    p = new_pipeline()
    docs, rejects, archives = p | beam.Create([tomli, hostile, cut, missing]) | ReadRepoArchives(limits)
    assert_that(
        docs | "NotClick" >> beam.Filter(lambda d: d.repo_name != "pallets/click"),
        equal_to(expected_docs), label="docs")
    # A truncated download must not silently shrink a repository: its intact files are withdrawn.
    assert_that(
        docs | "ClickIds" >> beam.Filter(lambda d: d.repo_name == "pallets/click")
        | beam.Map(lambda d: d.id), equal_to([]), label="withdrawn")
    assert_that(
        rejects | beam.Map(lambda r: (r.id, r.stage, r.reason)),
        equal_to([
            ("evil/hostile:h/../x.py", "read", "path_traversal"),
            ("evil/hostile:h/link", "read", "link"),
            ("evil/hostile:big.py", "read", "too_large"),
            ("evil/hostile:latin.py", "read", "invalid_utf8"),
            ("evil/hostile:nul.bin", "read", "binary"),
            ("pallets/click", "read", cut_reason),
            ("gone/missing", "read", "archive_not_found"),
        ] + click_rejects), label="rejects")
    assert_that(
        archives | beam.Map(lambda a: (a[0], a[3])),
        equal_to([("hukkin/tomli", "complete"), ("evil/hostile", "complete"),
                  ("pallets/click", cut_reason), ("gone/missing", "archive_not_found")]),
        label="statuses")
    tomli_fingerprint = ("hukkin/tomli", hashlib.sha256(tomli_path.read_bytes()).hexdigest(),
                         tomli_path.stat().st_size, "complete")
    assert_that(archives | beam.Filter(lambda a: a[0] == "hukkin/tomli"),
                equal_to([tomli_fingerprint]), label="fingerprint")
    result = run(p)
    click_counts = collections.Counter(r[2] for r in click_rejects)
    assert counters(result, "read") == {
        "kept": 10, "withdrawn": len(intact), "archives_complete": 2, "path_traversal": 1, "link": 1,
        "too_large": 1 + click_counts["too_large"], "invalid_utf8": 1,
        "binary": 1 + click_counts["binary"], cut_reason: 1, "archive_not_found": 1,
    }


def test_archive_cut_at_a_header_boundary_withdraws_all_its_documents(tmp_path, make_tar, beam_helpers):
    # The tar of three files without its end-of-archive marker, in a valid gzip stream: every file
    # reads in full, yet the repository is not whole, so none of them is emitted.
    new_pipeline, run, counters = beam_helpers
    whole = make_tar("whole.tar.gz", [("r/a.py", b"a = 1\n"), ("r/b.py", b"b = 2\n"),
                                      ("r/link", b"", tarfile.SYMTYPE, "a.py"), ("r/c.py", b"c = 3\n")])
    tar_bytes = gzip.decompress(whole.read_bytes())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(gzip.compress(tar_bytes[: 7 * 512]))  # a.py, b.py, link, c.py: 7 blocks
    p = new_pipeline()
    docs, rejects, archives = (p | beam.Create([_repo("x/whole", whole), _repo("x/cut", cut)])
                               | ReadRepoArchives())
    assert_that(docs | beam.Map(lambda d: d.id), equal_to(["x/whole:a.py", "x/whole:b.py", "x/whole:c.py"]),
                label="docs")
    assert_that(rejects | beam.Map(lambda r: (r.id, r.reason, r.detail)), equal_to([
        ("x/whole:r/link", "link", "r/link -> a.py"), ("x/cut:r/link", "link", "r/link -> a.py"),
        ("x/cut", "archive_truncated",
         "the tar ends without its end-of-archive marker; 3 documents withdrawn")]), label="rejects")
    assert_that(archives | beam.Map(lambda a: (a[0], a[3])),
                equal_to([("x/whole", "complete"), ("x/cut", "archive_truncated")]), label="status")
    assert counters(run(p), "read") == {"kept": 3, "withdrawn": 3, "archives_complete": 1, "link": 2,
                                        "archive_truncated": 1}
