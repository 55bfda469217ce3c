"""``pipelines.github_manifest`` over the bundled github_repos snapshot: the manifest it writes is
exactly what the issue's rules select, computed here independently in plain Python over the Parquet
files (not with the SQL), deterministic, readable by Mono's manifest parser and license filter
without a reject, with its own meta file; bad flags and inputs are one line, exit 2."""

from __future__ import annotations

import glob
import hashlib
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import cli, github_manifest
from transforms.sources import github_sql
from transforms.filters.licenses import DEFAULT_ALLOWED, is_allowed, normalize_allow_list, normalize_license
from transforms.sources.repo_list import parse_manifest_line
from tests.conftest import snapshot_licenses_and_stars
from tests.transforms.sources.bigquery_double import RecordingClient

PYTHON = ("py",)
ALL_EXTENSIONS = ("c", "h", "cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++", "go", "java",
                  "js", "mjs", "cjs", "jsx", "py")


def extension(path: str) -> str | None:
    """A path's lowercase extension: what follows the last '.' of its last component, if anything."""
    name = path.rsplit("/", 1)[-1]
    if "." not in name or name.endswith("."):
        return None
    return name.rsplit(".", 1)[1].lower()


def expected_manifest(snapshot, extensions, licenses, min_stars=0, min_files=1, stars_table="sample_repos"):
    """``{repo_name: (stars, license, ref)}`` the builder must write, from the rules: an allowed
    GitHub license (the smallest key where a repository has several), stars from the stars table
    (no row: 0) at least ``min_stars``, the ref with most regular files of the extensions (ties:
    the smallest ref), and at least ``min_files`` such files there."""
    def rows(name):
        return pq.read_table(snapshot / f"{name}.parquet").to_pylist()

    license_of, stars = snapshot_licenses_and_stars(snapshot, licenses, stars_table)
    per_ref = {}
    for row in rows("files"):
        if row["symlink_target"] is None and row["ref"] is not None and extension(row["path"]) in extensions:
            key = (row["repo_name"], row["ref"])
            per_ref[key] = per_ref.get(key, 0) + 1
    best = {}
    for (repo, ref), n in per_ref.items():
        if repo not in best or (-n, ref) < (-best[repo][1], best[repo][0]):
            best[repo] = (ref, n)
    return {repo: (stars.get(repo, 0), license_of[repo], ref) for repo, (ref, n) in best.items()
            if repo in license_of and stars.get(repo, 0) >= min_stars and n >= min_files}


def build(snapshot, out, *flags):
    github_manifest.main(["--bigquery_snapshot", str(snapshot), "--output", str(out), *flags])
    lines = out.read_bytes().splitlines()
    return lines, [json.loads(line) for line in lines]


def as_expected(records):
    return {r["repo_name"]: (r["stars"], r["license"], r["ref"]) for r in records}


@pytest.mark.parametrize("flags, extensions, licenses, bounds", [
    ((), PYTHON, DEFAULT_ALLOWED, {}),
    (("--languages", "c,cpp,go,java,javascript,python", "--min_stars", "1100"), ALL_EXTENSIONS, DEFAULT_ALLOWED,
     {"min_stars": 1100}),
    (("--languages", "go,javascript", "--licenses", "mit,isc"), ("go", "js", "mjs", "cjs", "jsx"), ("mit", "isc"), {}),
    (("--languages", "python", "--min_files", "5"), PYTHON, DEFAULT_ALLOWED, {"min_files": 5}),
    (("--licenses", "GPL-3.0-only,MIT"), PYTHON, ("gpl-3.0", "mit"), {}),  # SPDX ids match GitHub's keys
    (("--languages", "cpp,c", "--licenses", "bsd-3-clause,apache-2.0", "--min_files", "20"),
     ("c", "h", "cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++"), ("bsd-3-clause", "apache-2.0"),
     {"min_files": 20}),
])
def test_the_manifest_holds_exactly_the_repositories_the_rules_select(tmp_path, multi_snapshot, flags, extensions,
                                                                      licenses, bounds):
    _, records = build(multi_snapshot, tmp_path / "manifest.jsonl", *flags)
    expected = expected_manifest(multi_snapshot, extensions, licenses, **bounds)
    assert expected, "each setting selects something"
    assert as_expected(records) == expected
    assert [r["repo_name"] for r in records] == sorted(expected)
    for r in records:
        assert r["archive"] == f"https://codeload.github.com/{r['repo_name']}/tar.gz/{r['ref']}"
        assert list(r) == ["repo_name", "stars", "license", "archive", "ref"]


def test_the_bundled_sample_selects_what_it_holds(tmp_path, multi_snapshot):
    """Spelled out once: gpl-3.0 (html2text), no license row (idna) and a symbolic link as the only
    Python file (constructed) are out; the other Python repositories are in."""
    _, records = build(multi_snapshot, tmp_path / "manifest.jsonl")
    assert as_expected(records) == {
        "benjaminp/six": (1000, "mit", "refs/heads/master"),
        "jpype-project/jpype": (1100, "apache-2.0", "refs/heads/master"),
        "pallets/markupsafe": (600, "bsd-3-clause", "refs/heads/master"),
        "ultrajson/ultrajson": (4300, "bsd-3-clause", "refs/heads/master"),
    }


def edited_snapshot(snapshot, folder, files=(), licenses=(), with_contents=False):
    """A copy of the snapshot with rows added to files and licenses (contents left out: the
    builder never reads it)."""
    folder.mkdir()
    for name in ("licenses", "sample_repos", "languages") + (("contents",) if with_contents else ()):
        shutil.copy(snapshot / f"{name}.parquet", folder / f"{name}.parquet")
    for name, extra in (("files", files), ("licenses", licenses)):
        table = pq.read_table(snapshot / f"{name}.parquet")
        rows = table.to_pylist() + [{column: row.get(column) for column in table.column_names} for row in extra]
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / f"{name}.parquet")
    return folder


def file_rows(repo, ref, paths, symlink=None):
    return [{"repo_name": repo, "ref": ref, "path": p, "mode": 33188, "id": f"{repo}:{ref}:{p}",
             "symlink_target": symlink} for p in paths]


def test_refs_links_case_and_a_repository_without_stars(tmp_path, multi_snapshot):
    """The ref with most matching files wins (ties: the smallest), links never count, extensions
    match in any case, a ref is URL-quoted in the archive, a repository without a stars row has 0."""
    files = [
        *file_rows("benjaminp/six", "refs/tags/1.16.0", [f"t{i}.py" for i in range(6)]),  # 6 > master's 4
        *file_rows("ultrajson/ultrajson", "refs/heads/dev", ["a.py", "B.PY", "c.Py", "d.py", "e.py"]),  # tie
        *file_rows("pallets/markupsafe", "refs/heads/links", [f"l{i}.py" for i in range(20)], symlink="x.py"),
        *file_rows("kjd/idna", "refs/tags/v3.7#rc 1%", [f"idna/{i}.py" for i in range(6)]),  # 6 > master's 5
        *file_rows("new/no-stars", "refs/heads/main", ["Setup.PY", "dir.py/README", ".py"]),
    ]
    licenses = [{"repo_name": "kjd/idna", "license": "bsd-3-clause"}, {"repo_name": "new/no-stars", "license": "mit"}]
    snapshot = edited_snapshot(multi_snapshot, tmp_path / "snap", files, licenses)
    _, records = build(snapshot, tmp_path / "manifest.jsonl")
    assert as_expected(records) == expected_manifest(snapshot, PYTHON, DEFAULT_ALLOWED)
    by_name = {r["repo_name"]: r for r in records}
    assert by_name["benjaminp/six"]["ref"] == "refs/tags/1.16.0"
    assert by_name["ultrajson/ultrajson"]["ref"] == "refs/heads/dev"
    assert by_name["pallets/markupsafe"]["ref"] == "refs/heads/master"
    assert by_name["new/no-stars"]["stars"] == 0
    assert by_name["kjd/idna"]["archive"] == "https://codeload.github.com/kjd/idna/tar.gz/refs/tags/v3.7%23rc%201%25"
    _, two = build(snapshot, tmp_path / "two.jsonl", "--min_files", "2")
    _, three = build(snapshot, tmp_path / "three.jsonl", "--min_files", "3")
    assert "new/no-stars" in as_expected(two) and "new/no-stars" not in as_expected(three)  # '.py', Setup.PY


def test_every_line_is_one_mono_reads_without_a_reject(tmp_path, multi_snapshot):
    out = tmp_path / "manifest.jsonl"
    lines, _ = build(multi_snapshot, out, "--languages", "c,cpp,go,java,javascript,python",
                     "--licenses", "mit,apache-2.0,bsd-2-clause,bsd-3-clause,isc,gpl-3.0")
    allowed = normalize_allow_list(["mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "isc", "gpl-3.0"])
    assert len(lines) == 12  # every repository with a license row: idna has none
    for number, line in enumerate(lines, start=1):
        spec = parse_manifest_line(line + b"\n", f"manifest.jsonl:{number}", str(out))
        assert spec.archive.startswith("https://codeload.github.com/") and spec.stars >= 0
        assert is_allowed(normalize_license(spec.license), allowed)


def test_two_runs_are_byte_identical_and_the_seed_chooses(tmp_path, multi_snapshot):
    flags = ("--languages", "c,cpp,go,java,javascript,python")
    first, everything = build(multi_snapshot, tmp_path / "a.jsonl", *flags)
    again, _ = build(multi_snapshot, tmp_path / "b.jsonl", *flags)
    assert first == again and len(first) == 11

    def chosen(seed):
        lines, records = build(multi_snapshot, tmp_path / f"seed{seed}.jsonl", *flags, "--max_repos", "3",
                               "--seed", str(seed))
        assert [r["repo_name"] for r in records] == sorted(r["repo_name"] for r in records)
        return lines, [r["repo_name"] for r in records]

    def smallest(seed):  # the rule, independently: the 3 smallest sha256("seed:name")
        names = [r["repo_name"] for r in everything]
        return sorted(sorted(names, key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())[:3])

    lines0, names0 = chosen(0)
    assert chosen(0) == (lines0, names0) and names0 == smallest(0)
    others = [chosen(seed)[1] for seed in (1, 2, 3)]
    assert others == [smallest(seed) for seed in (1, 2, 3)]
    assert any(names != names0 for names in others)
    assert set(lines0) <= set(first), "a chosen line is the full manifest's line"
    _, all_of_them = build(multi_snapshot, tmp_path / "big.jsonl", *flags, "--max_repos", "50")
    assert as_expected(all_of_them) == as_expected(everything)


def test_the_meta_file_beside_the_manifest(tmp_path, multi_snapshot):
    out = tmp_path / "manifest.jsonl"
    lines, _ = build(multi_snapshot, out, "--min_stars", "1000", "--max_repos", "2", "--seed", "7")
    meta = json.loads((tmp_path / "manifest.jsonl.meta.json").read_text())
    assert glob.glob(str(tmp_path / "*.jsonl")) == [str(out)], "a Mono --input '*.jsonl' takes the manifest only"
    assert sorted(meta) == ["counts", "created", "inputs", "kind", "output", "selection", "sluice"]
    sql = github_manifest.github_sql.MONO_MANIFEST
    query = meta["inputs"]["query"]
    assert query["sql"] == "github_repos_mono_manifest.sql"
    sql_path = f"{github_manifest.github_sql.__file__.rsplit('/', 1)[0]}/sql/{sql.name}"
    assert query["sql_sha256"] == hashlib.sha256(open(sql_path, "rb").read()).hexdigest()
    assert query["parameters"] == {"extensions": ["py"], "licenses": sorted(DEFAULT_ALLOWED), "min_stars": 1000,
                                   "min_files": 1}
    assert meta["inputs"]["source"] == "snapshot" and meta["inputs"]["snapshot"] == str(multi_snapshot)
    for name in ("files", "licenses", "sample_repos"):
        digest = hashlib.sha256((multi_snapshot / f"{name}.parquet").read_bytes()).hexdigest()
        assert meta["inputs"]["tables"][name]["sha256"] == digest
    assert sorted(meta["inputs"]["tables"]) == ["files", "licenses", "sample_repos"]  # never contents
    assert meta["counts"] == {"rows_read": 3, "eligible": 3, "repos_written": 2, "skipped": {}}
    assert len(lines) == 2
    assert meta["output"] == {"path": str(out), "bytes": out.stat().st_size,
                              "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    assert meta["selection"] == {"languages": ["python"], "licenses": sorted(normalize_allow_list(DEFAULT_ALLOWED)),
                                 "min_stars": 1000, "min_files": 1, "max_repos": 2, "seed": 7}
    assert meta["sluice"]["version"] and meta["created"]["started"] <= meta["created"]["finished"]


def test_rows_mono_would_reject_are_skipped_and_counted(tmp_path, multi_snapshot):
    files = [*file_rows("bad name/x", "refs/heads/master", ["a.py"]),
             *file_rows("ok/one", "refs/heads/master", ["a.py"])]
    licenses = [{"repo_name": "bad name/x", "license": "mit"}, {"repo_name": "ok/one", "license": "mit"}]
    snapshot = edited_snapshot(multi_snapshot, tmp_path / "snap", files, licenses)
    out = tmp_path / "manifest.jsonl"
    _, records = build(snapshot, out)
    assert "ok/one" in as_expected(records) and "bad name/x" not in as_expected(records)
    meta = json.loads((tmp_path / "manifest.jsonl.meta.json").read_text())
    assert meta["counts"]["skipped"] == {"bad_repo_name": {"count": 1, "first": ["bad name/x"]}}
    assert meta["counts"]["rows_read"] == meta["counts"]["repos_written"] + 1


def test_an_empty_result_is_refused_unless_allowed(tmp_path, multi_snapshot, capsys):
    out = tmp_path / "manifest.jsonl"
    argv = ["--bigquery_snapshot", str(multi_snapshot), "--output", str(out), "--min_stars", "1000000"]
    assert github_manifest.run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: nothing to write: the query returned no repository for these parameters;"
                   " --allow_empty writes an empty manifest")
    assert list(tmp_path.iterdir()) == []
    assert github_manifest.run([*argv, "--allow_empty"]) == 0
    assert out.read_bytes() == b""
    assert json.loads((tmp_path / "manifest.jsonl.meta.json").read_text())["counts"]["repos_written"] == 0


def test_a_written_manifest_is_replaced_whole(tmp_path, multi_snapshot):
    out = tmp_path / "manifest.jsonl"
    out.write_text("old\n")
    lines, _ = build(multi_snapshot, out)
    assert lines and b"old" not in out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.jsonl", "manifest.jsonl.meta.json"]


def one_line_error(capsys, argv):
    assert github_manifest.run(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def wrong_files_ref(snapshot, folder):
    folder.mkdir()
    for name in ("licenses", "sample_repos"):
        shutil.copy(snapshot / f"{name}.parquet", folder / f"{name}.parquet")
    table = pq.read_table(snapshot / "files.parquet")
    index = table.schema.get_field_index("ref")
    pq.write_table(table.set_column(index, "ref", pa.array([1] * table.num_rows)), folder / "files.parquet")
    return folder


@pytest.mark.parametrize("flags, message", [
    (["--languages", "cobol"], "--languages: unknown cobol"),
    (["--licenses", "nope"], "--licenses: unknown license key 'nope'"),
    (["--min_stars", "-1"], "argument --min_stars: must be >= 0, got -1"),
    (["--min_files", "-1"], "argument --min_files: must be a positive integer, got -1"),
    (["--max_repos", "0"], "argument --max_repos: must be a positive integer, got 0"),
    (["--stars_table", "a;b"], "--stars_table: not a table name"),
    (["--min_stras", "5"], "unrecognized argument --min_stras (did you mean --min_stars?)"),
    (["--min_star", "5"], "unrecognized argument --min_star (did you mean --min_stars?)"),
    (["--runner", "DirectRunner"], "unrecognized argument --runner"),
    (["--bigquery_project", "p"], "give exactly one of --bigquery_snapshot DIR or --bigquery_project PROJECT"),
])
def test_bad_flags_are_one_line(tmp_path, multi_snapshot, capsys, flags, message):
    argv = ["--bigquery_snapshot", str(multi_snapshot), "--output", str(tmp_path / "m.jsonl"), *flags]
    assert message in one_line_error(capsys, argv)
    assert list(tmp_path.iterdir()) == []


def test_bad_snapshots_are_one_line(tmp_path, multi_snapshot, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(capsys, ["--bigquery_snapshot", str(empty), "--output", str(tmp_path / "m.jsonl")])
    assert line.startswith("error: --bigquery_snapshot: ") and "has no files.parquet" in line
    assert "files, licenses, sample_repos" in line
    wrong = wrong_files_ref(multi_snapshot, tmp_path / "wrong")
    line = one_line_error(capsys, ["--bigquery_snapshot", str(wrong), "--output", str(tmp_path / "m.jsonl")])
    assert line.endswith("table files: column ref is int64, expected string")
    assert not (tmp_path / "m.jsonl").exists()


def test_no_contents_table_is_needed(tmp_path, multi_snapshot):
    snapshot = edited_snapshot(multi_snapshot, tmp_path / "snap")
    assert not (snapshot / "contents.parquet").exists()
    _, records = build(snapshot, tmp_path / "manifest.jsonl")
    assert as_expected(records) == expected_manifest(multi_snapshot, PYTHON, DEFAULT_ALLOWED)


def live_rows_of(snapshot):
    """What BigQuery would return for the default parameters: the expected rows as result rows."""
    expected = expected_manifest(snapshot, PYTHON, DEFAULT_ALLOWED)
    return [{"repo_name": repo, "license": license_, "stars": stars, "ref": ref, "files": 1}
            for repo, (stars, license_, ref) in sorted(expected.items())]


def test_the_live_path_dry_runs_then_writes_the_rows_bigquery_returns(tmp_path, multi_snapshot, capsys):
    from google.cloud import bigquery as bq

    client = RecordingClient(estimate=7_000_000_000, rows=live_rows_of(multi_snapshot))
    out = tmp_path / "manifest.jsonl"
    argv = ["--bigquery_project", "p", "--bigquery_dataset", "proj.github_repos", "--output", str(out),
            "--min_stars", "2"]
    assert github_manifest.run(argv, bigquery_client=client) == 0
    dry, real = client.sent
    assert dry.config.dry_run and not real.config.dry_run and dry.sql == real.sql
    assert "`proj`.`github_repos`.`files`" in real.sql and "`contents`" not in real.sql
    assert real.config.maximum_bytes_billed == 5 * 10**12
    params = {p.name: p for p in real.config.query_parameters}
    assert isinstance(params["licenses"], bq.ArrayQueryParameter) and "mit" in params["licenses"].values
    assert isinstance(params["min_stars"], bq.ScalarQueryParameter) and params["min_stars"].value == 2
    assert "'mit'" not in real.sql and "@min_stars" in real.sql
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert as_expected(records) == expected_manifest(multi_snapshot, PYTHON, DEFAULT_ALLOWED)
    meta = json.loads((tmp_path / ("manifest.jsonl" + github_manifest.META_SUFFIX)).read_text())
    assert meta["inputs"]["source"] == "bigquery" and meta["inputs"]["dataset"] == "proj.github_repos"
    assert meta["inputs"]["query"]["bytes_estimated"] == 7_000_000_000
    assert meta["inputs"]["query"]["sql_sha256"] == github_sql.MONO_MANIFEST.sha256()


def test_the_live_path_stops_at_a_dry_run_only_or_over_the_cap(tmp_path, capsys):
    out = tmp_path / "manifest.jsonl"
    base = ["--bigquery_project", "p", "--output", str(out)]
    client = RecordingClient(estimate=10**9)
    assert github_manifest.run([*base, "--bigquery_dry_run_only"], bigquery_client=client) == 0
    assert json.loads(capsys.readouterr().out)["bigquery_dry_run"]["bytes_estimated"] == 10**9
    assert [s.config.dry_run for s in client.sent] == [True] and not out.exists()
    client = RecordingClient(estimate=10**9)
    assert github_manifest.run([*base, "--bigquery_maximum_bytes_billed", "1000"], bigquery_client=client) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: --bigquery_maximum_bytes_billed: the query would process 1,000,000,000 bytes")
    assert not client.real and not out.exists()
    line = one_line_error(capsys, [*base, "--bigquery_dataset", "a.b.c"])
    assert "--bigquery_dataset/--stars_table: not a dataset name" in line


def test_sluice_github_manifest_is_registered(tmp_path, multi_snapshot, capsys):
    out = tmp_path / "manifest.jsonl"
    assert cli.main(["github_manifest", "--bigquery_snapshot", str(multi_snapshot), "--output", str(out)]) == 0
    assert "wrote 4 repositories" in capsys.readouterr().out
    assert cli.main([]) == 0
    assert "github_manifest" in capsys.readouterr().out


def test_a_write_that_fails_midway_leaves_the_old_manifest_and_no_temporary(tmp_path):
    out = tmp_path / "manifest.jsonl"
    out.write_bytes(b"complete\n")

    def lines():
        yield b'{"repo_name": "a/b"}\n'
        raise ValueError("the query died")

    counts = github_manifest.github_manifest.ManifestLines(frozenset())
    with pytest.raises(ValueError, match="the query died"):
        github_manifest.write_manifest(str(out), lines(), False, counts)
    assert out.read_bytes() == b"complete\n" and [p.name for p in tmp_path.iterdir()] == ["manifest.jsonl"]
