"""The Multi SQL file, transpiled by sqlglot and run by DuckDB over the real sample snapshot: exactly
the rows the issue's rules select (computed independently in Python), values only as parameters."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest
import sqlglot

from transforms.sources import github_sql

ALL = tuple(github_sql.DEFAULT_EXTENSIONS)
PERMISSIVE = ("apache-2.0", "bsd-2-clause", "bsd-3-clause", "isc", "mit")
EXTENSIONS = {ext: lang for lang, exts in github_sql.DEFAULT_EXTENSIONS.items() for ext in exts}


def without_comments(sql):
    return re.sub(r"/\*.*?\*/", "", sql, flags=re.S)


def run_query(snapshot, params, stars_table="sample_repos"):
    con = github_sql.snapshot_connection(str(snapshot))
    try:
        rows = [r for batch in github_sql.run_snapshot_query(con, params, stars_table) for r in batch.to_pylist()]
    finally:
        con.close()
    return rows


def by_id(rows):
    out = {row["id"]: row for row in rows}
    assert len(out) == len(rows), "one row per content id"
    return out


@pytest.mark.parametrize("languages, licenses, bounds", [
    (ALL, PERMISSIVE, {}),
    (ALL, PERMISSIVE + ("gpl-3.0",), {}),
    (("go", "cpp"), ("isc", "bsd-3-clause"), {}),
    (ALL, PERMISSIVE, {"min_bytes": 2000, "max_bytes": 10000}),
    (ALL, PERMISSIVE, {"min_stars": 4300}),
])
def test_the_sql_file_returns_exactly_the_expected_rows(multi_snapshot, multi_expected, languages, licenses, bounds):
    params = github_sql.QueryParams(languages=languages, licenses=licenses, **bounds)
    got = by_id(run_query(multi_snapshot, params))
    extensions = {e: lang for e, lang in EXTENSIONS.items() if lang in languages}
    want = multi_expected(multi_snapshot, extensions, licenses, **bounds)
    assert got == want
    assert want  # every case selects something


def test_the_rules_drop_what_the_samples_hold_for_them(multi_snapshot, multi_expected):
    rows = by_id(run_query(multi_snapshot, github_sql.QueryParams(languages=ALL, licenses=PERMISSIVE)))
    repos = {r["repo_name"] for r in rows.values()}
    assert {r["language"] for r in rows.values()} == set(ALL)
    assert "Alir3z4/html2text" not in repos  # GPL
    assert "kjd/idna" not in repos  # no license row
    assert "sluice-samples/constructed" not in repos  # a UTF-16 (binary) file and a symbolic link
    assert not any(r["path"].endswith(".jar") for r in rows.values())
    files = pq.read_table(multi_snapshot / "files.parquet").to_pylist()
    contents = {c["id"]: c for c in pq.read_table(multi_snapshot / "contents.parquet").to_pylist()}
    binary = [f for f in files if contents[f["id"]]["binary"] and f["path"].endswith(".js")]
    assert binary and all(f["id"] not in rows for f in binary)
    # double-conversion is vendored by ultrajson: each shared blob comes once, from the smaller repo name.
    shared = {f["id"] for f in files if f["repo_name"] == "ultrajson/ultrajson" and "double-conversion" in f["path"]}
    shared &= set(rows)
    assert shared and {rows[i]["repo_name"] for i in shared} == {"google/double-conversion"}
    sized = by_id(run_query(multi_snapshot, github_sql.QueryParams(ALL, PERMISSIVE, max_bytes=5000)))
    assert sized and all(len(r["content"].encode("utf-8")) <= 5000 for r in sized.values())
    assert set(sized) < set(rows)


@pytest.mark.parametrize("hostile", [
    "mit') OR 1=1 --", "mit' OR '1'='1", 'mit" OR "1"="1', "mit'; DROP TABLE files; --", "' || '",
])
def test_hostile_values_change_nothing_but_the_value(multi_snapshot, hostile):
    only_mit = by_id(run_query(multi_snapshot, github_sql.QueryParams(ALL, ("mit",))))
    assert only_mit
    assert by_id(run_query(multi_snapshot, github_sql.QueryParams(ALL, ("mit", hostile)))) == only_mit
    assert run_query(multi_snapshot, github_sql.QueryParams(ALL, (hostile,))) == []
    assert run_query(multi_snapshot, github_sql.QueryParams((), (hostile,))) == []
    # The rendered SQL is the same text whatever the values: they never reach it.
    assert hostile not in github_sql.render("duckdb", None)


@pytest.mark.parametrize("stars_table", ["sample_repos; DROP TABLE files", "x`; SELECT 1; --", "a b", "p.d.t.x"])
def test_a_hostile_table_name_is_refused(stars_table):
    for dialect, dataset in (("duckdb", None), ("bigquery", github_sql.LIVE_DATASET)):
        with pytest.raises(ValueError):
            github_sql.render(dialect, dataset, stars_table)


def test_tables_are_renamed_as_identifiers():
    sql = github_sql.render("bigquery", "my-project.github_repos", "other-project.stars.repos")
    tables = {t.sql(dialect="bigquery") for t in sqlglot.parse_one(sql, read="bigquery").find_all(sqlglot.exp.Table)
              if t.db}  # not the CTEs
    assert {re.sub(r" AS \w+$", "", t) for t in tables} == {
        "`my-project`.`github_repos`.`contents`", "`my-project`.`github_repos`.`files`",
        "`my-project`.`github_repos`.`licenses`", "`other-project`.`stars`.`repos`"}
    assert "github_repos" not in without_comments(github_sql.render("duckdb", None))


def test_transpiled_sql_uses_parameters_and_no_array_agg_limit():
    source = github_sql.sql_text()
    names = set(re.findall(r"@(\w+)", source.split("WITH", 1)[1]))
    assert names == set(github_sql.QueryParams((), ()).named())
    body = without_comments(github_sql.render("duckdb", None))
    assert "@" not in body and {f"${n}" for n in names} <= set(re.findall(r"\$\w+", body))
    assert not re.search(r"ARRAY_AGG", body, re.I) and not re.search(r"\bLIMIT\b", body, re.I)
    for value in ("'mit'", "'py'", "1048576"):
        assert value not in body


def test_a_snapshot_without_a_table_is_refused(tmp_path, multi_snapshot):
    for name in ("contents", "files", "licenses", "languages"):
        (tmp_path / f"{name}.parquet").write_bytes((multi_snapshot / f"{name}.parquet").read_bytes())
    with pytest.raises(ValueError, match="sample_repos.parquet"):
        github_sql.snapshot_connection(str(tmp_path))


def _snapshot_with(snapshot, folder, table, arrow_table):
    for path in snapshot.glob("*.parquet"):
        (folder / path.name).write_bytes(path.read_bytes())
    pq.write_table(arrow_table, folder / f"{table}.parquet")
    return str(folder)


def test_snapshot_schemas_are_checked_before_the_query(tmp_path, multi_snapshot):
    import pyarrow as pa

    contents = pq.read_table(multi_snapshot / "contents.parquet")
    size = contents.schema.get_field_index("size")
    wrong = _snapshot_with(multi_snapshot, tmp_path, "contents",
                           contents.set_column(size, "size", contents.column("size").cast(pa.string())))
    for call in (github_sql.check_snapshot, github_sql.snapshot_tables, github_sql.snapshot_connection):
        with pytest.raises(ValueError) as err:
            call(wrong)
        assert str(err.value).endswith("table contents: column size is string, expected integer (int64)")
        assert "\n" not in str(err.value)
    (tmp_path / "contents.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="contents.parquet"):
        github_sql.check_snapshot(str(tmp_path))


def test_other_string_and_integer_types_and_all_null_columns_fit(tmp_path, multi_snapshot):
    import pyarrow as pa

    files = pq.read_table(multi_snapshot / "files.parquet")
    symlink = files.schema.get_field_index("symlink_target")
    files = files.set_column(symlink, "symlink_target", pa.nulls(files.num_rows))  # all null: type null
    files = files.set_column(files.schema.get_field_index("path"), "path", files.column("path").cast(pa.large_string()))
    folder = _snapshot_with(multi_snapshot, tmp_path, "files", files)
    stars = pq.read_table(multi_snapshot / "sample_repos.parquet")
    pq.write_table(stars.set_column(1, "watch_count", stars.column("watch_count").cast(pa.int32())),
                   tmp_path / "sample_repos.parquet")
    assert set(github_sql.check_snapshot(folder)) == set(github_sql.SNAPSHOT_TABLES)
    assert set(github_sql.snapshot_tables(folder)) == set(github_sql.SNAPSHOT_TABLES)


# The Mono manifest query shares the renderer, the parameter convention and the snapshot check.
MANIFEST = github_sql.MONO_MANIFEST


def test_each_sql_file_is_rendered_with_its_own_tables():
    sql = github_sql.render("bigquery", "my-project.github_repos", "other-project.stars.repos", MANIFEST)
    tables = {re.sub(r" AS \w+$", "", t.sql(dialect="bigquery"))
              for t in sqlglot.parse_one(sql, read="bigquery").find_all(sqlglot.exp.Table) if t.db}
    assert tables == {"`my-project`.`github_repos`.`files`", "`my-project`.`github_repos`.`licenses`",
                      "`other-project`.`stars`.`repos`"}, "no contents: the manifest never scans 2.3 TB"
    assert "github_repos" not in without_comments(github_sql.render("duckdb", None, query=MANIFEST))
    assert github_sql.render("duckdb", None) == github_sql.render("duckdb", None, query=github_sql.MULTI)
    assert github_sql.sql_sha256(MANIFEST) != github_sql.sql_sha256() == github_sql.MULTI.sha256()


def test_the_manifest_sql_takes_every_value_as_a_parameter():
    from transforms.sources.github_manifest import ManifestParams

    names = set(re.findall(r"@(\w+)", MANIFEST.text().split("WITH", 1)[1]))
    assert names == set(ManifestParams(("python",), ("mit",)).named())
    body = without_comments(github_sql.render("duckdb", None, query=MANIFEST))
    assert "@" not in body and {f"${n}" for n in names} <= set(re.findall(r"\$\w+", body))
    assert not re.search(r"ARRAY_AGG", body, re.I)
    for value in ("'mit'", "'py'"):
        assert value not in body


def test_a_snapshot_is_checked_for_the_tables_and_columns_of_its_query(tmp_path, multi_snapshot):
    for name in ("files", "licenses", "sample_repos"):
        (tmp_path / f"{name}.parquet").write_bytes((multi_snapshot / f"{name}.parquet").read_bytes())
    assert set(github_sql.check_snapshot(str(tmp_path), query=MANIFEST)) == {"files", "licenses", "sample_repos"}
    assert set(github_sql.snapshot_tables(str(tmp_path), query=MANIFEST)) == {"files", "licenses", "sample_repos"}
    with pytest.raises(ValueError, match=r"has no contents.parquet \(a snapshot for github_repos_multi.sql holds"):
        github_sql.check_snapshot(str(tmp_path))
    files = pq.read_table(multi_snapshot / "files.parquet").drop_columns(["ref"])
    pq.write_table(files, tmp_path / "files.parquet")
    with pytest.raises(ValueError, match=r"table files has no column ref \(expected string\)$"):
        github_sql.check_snapshot(str(tmp_path), query=MANIFEST)


@pytest.mark.parametrize("keys, expected", [
    (("mit", "apache-2.0"), ("apache-2.0", "mit")),
    (("gpl-3.0",), ("gpl-3.0", "gpl-3.0-only")),  # GitHub's key is not the SPDX id
    (("GPL-2.0-only", "LGPL-2.1-only", "AGPL-3.0-only"), ("agpl-3.0", "agpl-3.0-only", "gpl-2.0", "gpl-2.0-only",
                                                          "lgpl-2.1", "lgpl-2.1-only")),
    (("0bsd",), ("0bsd",)),
])
def test_github_license_keys_of_an_spdx_allow_list(keys, expected):
    from transforms.filters.licenses import normalize_allow_list, normalize_license

    assert github_sql.github_license_keys(normalize_allow_list(keys)) == expected
    assert all(normalize_license(key) for key in github_sql.GITHUB_LICENSE_KEYS), "Mono reads each key"
