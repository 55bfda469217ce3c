"""The manifest builder's row checks: GitHub archive URLs, lines Mono reads without a reject, rows it
would reject counted by reason, the --max_repos choice independent of row order, names in order."""

from __future__ import annotations

import random

import pytest

from transforms.filters.licenses import normalize_allow_list
from transforms.sources.github_manifest import ManifestLines, archive_url
from transforms.sources.repo_list import parse_manifest_line

ALLOWED = normalize_allow_list(["mit", "apache-2.0"])


def row(name, license_="mit", stars=5, ref="refs/heads/master"):
    return {"repo_name": name, "license": license_, "stars": stars, "ref": ref, "files": 1}


@pytest.mark.parametrize("ref, tail", [
    ("refs/heads/master", "refs/heads/master"),
    ("v1.0", "v1.0"),
    ("refs/tags/a b#c?d%e", "refs/tags/a%20b%23c%3Fd%25e"),
    ("0123456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef01234567"),
])
def test_archive_urls_are_codeload_at_the_quoted_ref(ref, tail):
    assert archive_url("psf/requests", ref) == f"https://codeload.github.com/psf/requests/tar.gz/{tail}"


def test_lines_parse_as_mono_manifest_lines():
    lines = list(ManifestLines(ALLOWED)([row("a/x"), row("b/y", "apache-2.0", 0, "v2")]))
    specs = [parse_manifest_line(line, f"m:{i}", "/tmp/m.jsonl") for i, line in enumerate(lines, 1)]
    assert [(s.repo_name, s.stars, s.license, s.ref, s.archive) for s in specs] == [
        ("a/x", 5, "mit", "refs/heads/master", "https://codeload.github.com/a/x/tar.gz/refs/heads/master"),
        ("b/y", 0, "apache-2.0", "v2", "https://codeload.github.com/b/y/tar.gz/v2")]


def test_rows_mono_would_reject_are_counted_not_written():
    rows = [row("a/ok"), row("bad name/x"), row("b/gpl", "gpl-3.0"), row("c/odd", "not-a-license"),
            row("d/noref", ref=None), row("e/neg", stars=-1), row(None)]
    lines = ManifestLines(ALLOWED)
    assert [parse_manifest_line(x, "m:1", "m").repo_name for x in lines(rows)] == ["a/ok"]
    assert (lines.rows_read, lines.eligible, lines.written) == (7, 1, 1)
    assert lines.skipped == {
        "bad_ref": {"count": 1, "first": ["d/noref"]},
        "bad_repo_name": {"count": 2, "first": ["bad name/x", "None"]},
        "bad_stars": {"count": 1, "first": ["e/neg"]},
        "license_not_allowed": {"count": 1, "first": ["b/gpl"]},
        "license_unknown": {"count": 1, "first": ["c/odd"]},
    }


def test_the_choice_depends_on_the_seed_not_the_row_order():
    rows = [row(f"owner/repo{i:03d}") for i in range(300)]
    chosen = b"".join(ManifestLines(ALLOWED, max_repos=7, seed=3)(rows))
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert b"".join(ManifestLines(ALLOWED, max_repos=7, seed=3)(shuffled)) == chosen
    assert b"".join(ManifestLines(ALLOWED, max_repos=7, seed=4)(rows)) != chosen
    assert chosen.count(b"\n") == 7


def test_rows_out_of_order_or_repeated_fail_loudly():
    with pytest.raises(ValueError, match="not in increasing repo_name order: 'a/x' after 'b/y'"):
        list(ManifestLines(ALLOWED)([row("b/y"), row("a/x")]))
    with pytest.raises(ValueError, match="'a/x' after 'a/x'"):
        list(ManifestLines(ALLOWED, max_repos=5)([row("a/x"), row("a/x")]))
