"""Manifest parsing: valid and malformed lines, archive path resolution, rejects by line number."""

from __future__ import annotations

import json
import os
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import Reject, RepoSpec, is_int64
from tests.transforms.sources.strategies import JSON_VALUES, SETTINGS, json_lines
from transforms.sources.repo_list import ReadRepoManifest, parse_manifest_line, resolve_archive

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "samples" / "mono" / "manifest.jsonl"
ARCHIVES = ROOT / "samples" / "mono" / "archives"


def _line(**fields) -> bytes:
    record = {"repo_name": "owner/repo", "stars": 10, "license": "mit",
              "archive": "archives/repo.tar.gz", "ref": "v1"}
    record.update(fields)
    record = {k: v for k, v in record.items() if v is not _MISSING}
    return (json.dumps(record) + "\n").encode("utf-8")


_MISSING = object()


def test_valid_line_becomes_repo_spec():
    spec = parse_manifest_line(_line(), "m.jsonl:7", "/data/lists/m.jsonl")
    assert spec == RepoSpec(
        repo_name="owner/repo", stars=10, license="mit", archive="/data/lists/archives/repo.tar.gz",
        ref="v1", source="m.jsonl:7",
    )
    assert spec.license_spdx is None and spec.license_source is None


@pytest.mark.parametrize(
    "fields",
    [dict(stars=None), dict(stars=_MISSING), dict(license=None), dict(license=_MISSING),
     dict(ref=None), dict(ref=_MISSING), dict(stars=0), dict(stars=(1 << 63) - 1)],
)
def test_optional_fields_may_be_null_or_missing(fields):
    spec = parse_manifest_line(_line(**fields), "m:1", "m.jsonl")
    for name, value in fields.items():
        assert getattr(spec, name) == (None if value is _MISSING else value)


@pytest.mark.parametrize(
    "line, reason",
    [
        (b'{"repo_name": "a/b", "archive": "x.tgz"', "invalid_json"),
        (b"not json at all\n", "invalid_json"),
        (b'{"repo_name": "a/\xff", "archive": "x.tgz"}\n', "invalid_utf8"),
        (b'["a/b", 3]\n', "not_an_object"),
        (b'{"repo_name": "a/b", "archive": "x.tgz", "ref": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         "invalid_json"),  # nested 100,000 deep: a reject, not RecursionError
        (b'{"repo_name": "a/b", "archive": "x.tgz", "stars": ' + b"1" * 5000 + b"}", "invalid_json"),
        (_line(repo_name=_MISSING), "bad_repo_name"),
        (_line(repo_name=""), "bad_repo_name"),
        (_line(repo_name="just-a-name"), "bad_repo_name"),
        (_line(repo_name="a/b/c"), "bad_repo_name"),
        (_line(repo_name="a b/c"), "bad_repo_name"),
        (_line(repo_name=5), "bad_repo_name"),
        (_line(stars=-1), "bad_stars"),
        (_line(stars=True), "bad_stars"),
        (_line(stars=False), "bad_stars"),
        (_line(stars=12.5), "bad_stars"),
        (_line(stars="100"), "bad_stars"),
        (_line(stars=10**30), "bad_stars"),  # passed before, then failed the Parquet int64 write
        (_line(stars=1 << 63), "bad_stars"),
        (_line(stars=float("nan")), "bad_stars"),  # json writes NaN and Python's json reads it
        (_line(stars=float("inf")), "bad_stars"),
        (_line(stars=float("-inf")), "bad_stars"),
        (_line(license=3), "bad_license"),
        (_line(license=["MIT"]), "bad_license"),
        (_line(license={"spdx": "MIT"}), "bad_license"),
        (_line(archive=_MISSING), "bad_archive"),
        (_line(archive=""), "bad_archive"),
        (_line(archive=7), "bad_archive"),
        (_line(ref=3), "bad_ref"),
    ],
)
def test_malformed_lines_raise_with_reason(line, reason):
    with pytest.raises(ValueError) as err:
        parse_manifest_line(line, "m:1", "m.jsonl")
    assert str(err.value).partition(": ")[0] == reason


def test_repo_name_with_trailing_newline_is_rejected():
    # A JSON string may hold a newline; "owner/repo\n" is no GitHub name and would put a newline
    # into every document id of the repository.
    with pytest.raises(ValueError, match="bad_repo_name"):
        parse_manifest_line(_line(repo_name="owner/repo\n"), "m:1", "m.jsonl")


@pytest.mark.parametrize(
    "archive, manifest, expected",
    [
        ("archives/x.tar.gz", "samples/mono/manifest.jsonl", "samples/mono/archives/x.tar.gz"),
        ("./archives/../x.tar.gz", "/data/m/manifest.jsonl", "/data/m/x.tar.gz"),
        ("../x.tar.gz", "/data/m/manifest.jsonl", "/data/x.tar.gz"),
        ("archives/x.tar.gz", "manifest.jsonl", "archives/x.tar.gz"),
        ("/abs/x.tar.gz", "/data/m/manifest.jsonl", "/abs/x.tar.gz"),
        ("gs://other/x.tar.gz", "/data/m/manifest.jsonl", "gs://other/x.tar.gz"),
        ("https://codeload.github.com/a/b/tar.gz/v1", "gs://bucket/m.jsonl",
         "https://codeload.github.com/a/b/tar.gz/v1"),
        ("archives/x.tar.gz", "gs://bucket/lists/m.jsonl", "gs://bucket/lists/archives/x.tar.gz"),
        ("../x.tar.gz", "gs://bucket/lists/m.jsonl", "gs://bucket/x.tar.gz"),
        ("x.tar.gz", "file:///data/m.jsonl", "file:///data/x.tar.gz"),
    ],
)
def test_resolve_archive(archive, manifest, expected):
    assert resolve_archive(archive, manifest) == expected


def test_sample_manifest_parses_and_archives_exist(sample_repos, manifest_records):
    assert [r.repo_name for r in sample_repos] == [m["repo_name"] for m in manifest_records]
    for repo, record in zip(sample_repos, manifest_records):
        assert os.path.isfile(repo.archive), repo.archive
        assert os.path.samefile(repo.archive, ARCHIVES / os.path.basename(record["archive"]))
        assert (repo.stars, repo.license, repo.ref) == (record["stars"], record["license"], record["ref"])


def test_read_repo_manifest_pipeline_rejects_by_line(tmp_path, beam_helpers):
    new_pipeline, run, counters = beam_helpers
    real = MANIFEST.read_bytes().splitlines(keepends=True)
    lines = [
        real[0],  # 1 six
        real[1],  # 2 idna
        b"\n",  # 3 blank: skipped, but still numbered
        b'{"repo_name": "broken/json", \n',  # 4
        _line(repo_name="neg/stars", stars=-5),  # 5
        b"   \n",  # 6 blank
        real[2],  # 7 itsdangerous
        b"[1, 2]",  # 8, last line without a newline
    ]
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"".join(lines))
    expected = [
        parse_manifest_line(real[i], f"m.jsonl:{n}", str(path)) for i, n in ((0, 1), (1, 2), (2, 7))
    ]
    assert expected[0].archive == str(tmp_path / "archives" / "six-1.16.0.tar.gz")

    p = new_pipeline()
    repos, rejects = p | ReadRepoManifest(str(path))
    assert_that(repos, equal_to(expected), label="repos")
    assert_that(
        rejects | beam.Map(lambda r: (r.id, r.stage, r.reason)),
        equal_to([
            ("manifest:m.jsonl:4", "manifest", "invalid_json"),
            ("manifest:m.jsonl:5", "manifest", "bad_stars"),
            ("manifest:m.jsonl:8", "manifest", "not_an_object"),
        ]),
        label="rejects",
    )
    assert_that(
        rejects | beam.Filter(lambda r: r.reason == "bad_stars"),
        equal_to([Reject("manifest:m.jsonl:5", "manifest", "bad_stars", "-5")]),
        label="detail",
    )
    result = run(p)
    assert counters(result, "manifest") == {"kept": 3, "invalid_json": 1, "bad_stars": 1, "not_an_object": 1}



@pytest.mark.parametrize("options", [[], ["--direct_num_workers=4", "--direct_running_mode=multi_threading"]])
def test_every_copy_of_a_repo_name_after_the_first_is_a_duplicate_reject(tmp_path, beam_helpers, options):
    # Two manifests the pattern matches: the first copy is the first by (path, line number),
    # whatever the worker count; ids <repo_name>:<path> stay unique by construction.
    _, run, counters = beam_helpers
    lines = [_line(repo_name=f"owner/r{i}") for i in range(12)]
    (tmp_path / "a.jsonl").write_bytes(b"".join([
        lines[0], lines[1], _line(repo_name="owner/r0", stars=99),  # 3: copy of line 1
        _line(repo_name="owner/r2", stars=-1),  # 4: invalid, so r2's first valid copy is b.jsonl:1
        *lines[3:11], lines[1],  # 13: another copy of line 2 (after 10 other lines)
    ]))
    (tmp_path / "b.jsonl").write_bytes(lines[2] + lines[0] + lines[11])  # b.jsonl:2 copies a.jsonl:1
    p = beam.Pipeline(runner="DirectRunner", options=beam.options.pipeline_options.PipelineOptions(options))
    repos, rejects = p | ReadRepoManifest(str(tmp_path / "*.jsonl"))
    assert_that(repos | beam.Map(lambda r: (r.repo_name, r.source, r.stars)), equal_to([
        ("owner/r0", "a.jsonl:1", 10), ("owner/r1", "a.jsonl:2", 10), ("owner/r2", "b.jsonl:1", 10),
        *((f"owner/r{n - 2}", f"a.jsonl:{n}", 10) for n in range(5, 13)), ("owner/r11", "b.jsonl:3", 10),
    ]), label="repos")
    assert_that(rejects | beam.Map(lambda r: (r.id, r.reason, r.detail)), equal_to([
        ("manifest:a.jsonl:3", "duplicate_repo", "first at a.jsonl:1"),
        ("manifest:a.jsonl:4", "bad_stars", "-1"),
        ("manifest:a.jsonl:13", "duplicate_repo", "first at a.jsonl:2"),
        ("manifest:b.jsonl:2", "duplicate_repo", "first at a.jsonl:1"),
    ]), label="rejects")
    assert counters(run(p), "manifest") == {"kept": 12, "duplicate_repo": 3, "bad_stars": 1}


MANIFEST_REASONS = {"invalid_utf8", "invalid_json", "not_an_object", "bad_repo_name", "bad_stars",
                    "bad_license", "bad_archive", "bad_ref"}
_MANIFEST_RECORDS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({}, optional={
        "repo_name": st.one_of(JSON_VALUES, st.sampled_from(["owner/repo", "a-b/c.d_e", "a/b/c", "a/"])),
        "stars": st.one_of(JSON_VALUES, st.integers(min_value=-5, max_value=1 << 64)),
        "license": st.one_of(JSON_VALUES, st.sampled_from(["mit", "MIT OR Apache-2.0"])),
        "archive": st.one_of(JSON_VALUES, st.sampled_from(["archives/x.tar.gz", "/abs/x", "gs://b/x", "a://", ".."])),
        "ref": JSON_VALUES,
    }),
)


@settings(**SETTINGS)
@given(line=json_lines(_MANIFEST_RECORDS), manifest=st.sampled_from(["m.jsonl", "/d/m.jsonl", "gs://b/l/m.jsonl"]))
def test_any_line_is_a_repo_spec_or_a_named_reject(line, manifest):
    # _ParseManifestFn turns exactly these ValueErrors into counted rejects; anything else ends the job.
    try:
        spec = parse_manifest_line(line, "m.jsonl:1", manifest)
    except ValueError as err:
        reason, _, detail = str(err).partition(": ")
        assert reason in MANIFEST_REASONS and len(detail) <= 100, err
        return
    assert isinstance(spec.repo_name, str) and isinstance(spec.archive, str) and spec.archive
    assert spec.stars is None or (is_int64(spec.stars) and spec.stars >= 0)
    assert all(v is None or isinstance(v, str) for v in (spec.license, spec.ref))
