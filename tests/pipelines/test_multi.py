"""The Multi pipeline end to end on the real github_repos sample snapshot: outputs, per-language
counts against a direct count, language tags in the packed stream, flags, the live path never
built locally, and determinism across worker counts."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import multi
from pipelines.driver import run_main
from schemas.packed_stream import read_arrow_stream
from schemas.tokenizer import Tokenizer
from schemas.tokens import LANGUAGE_TAGS
from transforms.sources import bigquery
from tests.transforms.sources.bigquery_double import RecordingClient
from transforms.sources import github_sql

EXTENSIONS = {ext: lang for lang, exts in github_sql.DEFAULT_EXTENSIONS.items() for ext in exts}
DEFAULT_LICENSE_KEYS = ("0bsd", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "isc", "mit",
                        "unlicense", "zlib")


def run_multi(snapshot, tokenizer, output, *extra):
    return multi.main(["--bigquery_snapshot", str(snapshot), "--output", str(output),
                       "--tokenizer", str(tokenizer), *extra])


def read_parquet_folder(folder):
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]).to_pylist()


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("train-*"))}


def documents_of_stream(out, num_shards, tokenizer):
    """Each packed document's tokens (EOT removed), read back from the padded Arrow shards."""
    docs = []
    for shard in range(num_shards):
        ids, mask = read_arrow_stream(out / f"train-{shard:05d}-of-{num_shards:05d}.arrow")
        stream = ids.reshape(-1)[mask.reshape(-1) == 1]
        docs += [p[:-1] for p in np.split(stream, np.flatnonzero(stream == tokenizer.eot_id) + 1)[:-1]]
    return docs


@pytest.fixture(scope="module")
def published(multi_snapshot, sample_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("multi")
    manifest = run_multi(multi_snapshot, sample_tokenizer, out, "--num_shards", "3", "--seq_len", "512",
                         "--pack_tail", "pad", "--write_documents", "--write_rejects")
    return out, manifest


def test_outputs_and_manifest(published, multi_snapshot, published_output_check):
    out, manifest = published
    published_output_check(out, manifest, num_shards=3)
    assert manifest["dataset"] == "multi"
    inputs = manifest["inputs"]
    assert inputs["source"] == "snapshot" and set(inputs["tables"]) == set(github_sql.SNAPSHOT_TABLES)
    for name, table in inputs["tables"].items():
        data = (multi_snapshot / f"{name}.parquet").read_bytes()
        assert table["sha256"] == hashlib.sha256(data).hexdigest()
    assert inputs["query"]["sql_sha256"] == github_sql.sql_sha256()
    assert inputs["query"]["parameters"]["licenses"] == list(DEFAULT_LICENSE_KEYS)
    assert manifest["config"]["near_dedup"]["per_language"] is True and manifest["config"]["language_tags"]
    assert not (out / "_run").exists()


def test_per_language_counts_match_a_direct_count(published, multi_snapshot, multi_expected, sample_tokenizer):
    out, manifest = published
    expected = multi_expected(multi_snapshot, EXTENSIONS, DEFAULT_LICENSE_KEYS)
    assert manifest["inputs"]["query"]["rows"] == len(expected)
    read = {}
    for row in expected.values():
        entry = read.setdefault(row["language"], {"documents": 0, "bytes": 0})
        entry["documents"] += 1
        entry["bytes"] += len(row["content"].encode("utf-8"))
    languages = manifest["languages"]
    assert set(languages) == set(LANGUAGE_TAGS) and {k: v["read"] for k, v in languages.items()} == read

    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    docs = read_parquet_folder(out / "documents")
    kept = {lang: {"documents": 0, "bytes": 0, "tokens": 0} for lang in LANGUAGE_TAGS}
    for doc in docs:
        assert doc["id"] == f"{doc['repo_name']}:{doc['path']}"
        entry = kept[doc["language"]]
        entry["documents"] += 1
        entry["bytes"] += len(doc["text"].encode("utf-8"))
        entry["tokens"] += len(tokenizer.encode(doc["text"])) + 1  # + the language tag
    assert {k: v["kept"] for k, v in languages.items()} == kept
    assert sum(v["tokens"] for v in kept.values()) == manifest["counts"]["tokenize"]["tokens"]

    language_of = {f"{r['repo_name']}:{r['path']}": r["language"] for r in expected.values()}
    rejected = {}
    for r in read_parquet_folder(out / "rejects"):
        key = f"{r['stage']}/{r['reason']}"
        per = rejected.setdefault(language_of[r["id"]], {})
        per[key] = per.get(key, 0) + 1
    for lang, entry in languages.items():
        assert entry["rejected"]["by_reason"] == dict(sorted(rejected.get(lang, {}).items()))
        assert entry["rejected"]["documents"] == entry["read"]["documents"] - entry["kept"]["documents"]
    # The minified js-cookie builds are the quality filter's work.
    assert languages["javascript"]["rejected"]["by_reason"].get("quality/max_line_length", 0) >= 1


def test_language_tag_starts_each_document_once(published, sample_tokenizer):
    out, manifest = published
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    tag_ids = {tokenizer.language_tag_id(lang): lang for lang in LANGUAGE_TAGS}
    packed = documents_of_stream(out, 3, tokenizer)
    assert len(packed) == manifest["totals"]["documents"]
    seen = {}
    for tokens in packed:
        assert int(tokens[0]) in tag_ids
        assert not np.isin(tokens[1:], list(tag_ids)).any()
        seen[tag_ids[int(tokens[0])]] = seen.get(tag_ids[int(tokens[0])], 0) + 1
    assert seen == {lang: e["kept"]["documents"] for lang, e in manifest["languages"].items()
                    if e["kept"]["documents"]}
    texts = sorted(d["text"] for d in read_parquet_folder(out / "documents"))
    assert sorted(tokenizer.decode(t[1:]) for t in packed) == texts


def test_no_language_tags_and_fewer_languages(multi_snapshot, sample_tokenizer, tmp_path, monkeypatch):
    # The local path must never build the live read: it would block on an OAuth flow.
    def refuse(*args, **kwargs):
        raise AssertionError("live BigQuery path constructed on a local run")

    from apache_beam.io.gcp import bigquery as beam_bigquery

    monkeypatch.setattr(beam_bigquery.ReadFromBigQuery, "__init__", refuse)
    monkeypatch.setattr(bigquery, "materialise_query", refuse)
    monkeypatch.setattr(bigquery, "connect", refuse)
    monkeypatch.setattr(bigquery, "read_table", refuse)
    manifest = run_multi(multi_snapshot, sample_tokenizer, tmp_path / "o", "--no-language_tags",
                         "--languages", "go,python", "--no-near_dedup", "--no-decontaminate",
                         "--num_shards", "2", "--pack_tail", "pad")
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    packed = documents_of_stream(tmp_path / "o", 2, tokenizer)
    tag_ids = [tokenizer.language_tag_id(lang) for lang in LANGUAGE_TAGS]
    assert packed and not any(np.isin(t, tag_ids).any() for t in packed)
    assert {k for k, v in manifest["languages"].items() if v["read"]["documents"]} == {"go", "python"}
    assert manifest["inputs"]["query"]["parameters"]["extension_languages"] == ["go", "python"]


@pytest.mark.parametrize("argv, needle", [
    (["--languages", "rust"], "--languages: unknown rust"),
    (["--licenses", "nope"], "unknown license key 'nope'"),
    (["--bigquery_export", "x.parquet"], "exactly one of"),
    (["--stars_table", "sample_repos; DROP TABLE files"], "--stars_table: not a table name"),
    (["--min_file_bytes", "10", "--max_file_bytes", "5"], "--min_file_bytes"),
    (["--bigquery_dry_run_only"], "--bigquery_dry_run_only: only with --bigquery_project"),
    (["--bigquery_export_to", "gs://b-1/multi/*.parquet"], "--bigquery_export_to: only with --bigquery_project"),
    (["--bigquery_maximum_bytes_billed", "0"], "--bigquery_maximum_bytes_billed: "),
])
def test_bad_flags_give_one_line(multi_snapshot, sample_tokenizer, tmp_path, capsys, argv, needle):
    status = multi.run(["--bigquery_snapshot", str(multi_snapshot), "--output", str(tmp_path / "o"),
                        "--tokenizer", str(sample_tokenizer), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "o" / "manifest.json").exists()


def _damaged_snapshot(snapshot, folder, table, change):
    """A copy of the snapshot whose ``table`` is ``change(arrow table)``; a table the snapshot
    lacks (a --stars_table) is made from sample_repos."""
    folder.mkdir()
    for path in snapshot.glob("*.parquet"):
        (folder / path.name).write_bytes(path.read_bytes())
    source = snapshot / f"{table}.parquet"
    source = source if source.exists() else snapshot / "sample_repos.parquet"
    pq.write_table(change(pq.read_table(source)), folder / f"{table}.parquet")
    return folder


def _cast(column, type_):
    return lambda t: t.set_column(t.schema.get_field_index(column), column, t.column(column).cast(type_))


@pytest.mark.parametrize("table, change, extra, needle", [
    ("contents", _cast("size", pa.string()), [], "table contents: column size is string, expected integer (int64)"),
    ("contents", lambda t: t.drop_columns(["binary"]), [], "table contents has no column binary (expected bool)"),
    ("files", _cast("path", pa.binary()), [], "table files: column path is binary, expected string"),
    ("sample_repos", _cast("watch_count", pa.float64()), [],
     "table sample_repos: column watch_count is double, expected integer (int64)"),
    ("stars", lambda t: t.rename_columns(["repo_name", "stars"]), ["--stars_table", "stars"],  # checked too
     "table stars has no column watch_count (expected integer (int64))"),
])
def test_a_snapshot_column_of_the_wrong_type_is_one_line_before_the_query(
        multi_snapshot, sample_tokenizer, tmp_path, capsys, table, change, extra, needle):
    snapshot = _damaged_snapshot(multi_snapshot, tmp_path / "snapshot", table, change)
    status = multi.run(["--bigquery_snapshot", str(snapshot), "--output", str(tmp_path / "o"),
                        "--tokenizer", str(sample_tokenizer), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("error: --bigquery_snapshot: ") and err[0].endswith(needle), err
    assert not (tmp_path / "o").exists()  # refused before the query and before any output


def test_live_query_without_client_or_credentials_fails_fast(sample_tokenizer, tmp_path, capsys):
    status = multi.run(["--bigquery_project", "some-project", "--bigquery_destination", "p.d.t",
                        "--bigquery_timeout_s", "5", "--output", str(tmp_path / "o"),
                        "--tokenizer", str(sample_tokenizer)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("error: --bigquery_project:"), err


def live_argv(tmp_path, sample_tokenizer, *extra):
    return ["--bigquery_project", "billing-project", "--output", str(tmp_path / "multi" / "v1"),
            "--tokenizer", str(sample_tokenizer), *extra]


@pytest.mark.parametrize("target", [["--bigquery_destination", "p.d.t"],
                                    ["--bigquery_export_to", "gs://sluice-inputs/multi/part-*.parquet"]])
def test_dry_run_only_prints_the_estimate_and_claims_nothing(sample_tokenizer, tmp_path, capsys, target):
    client = RecordingClient(estimate=2_345_678_901_234)
    status = run_main(multi.main, live_argv(tmp_path, sample_tokenizer, *target, "--bigquery_dry_run_only",
                                            "--licenses", "mit"), bigquery_client=client)
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0 and len(out) == 1, out
    estimate = json.loads(out[0])["bigquery_dry_run"]
    assert estimate["bytes_estimated"] == 2_345_678_901_234
    assert estimate["maximum_bytes_billed"] == bigquery.DEFAULT_MAXIMUM_BYTES_BILLED
    assert [s.config.dry_run for s in client.sent] == [True]  # no job, no export
    assert not client.sent[0].sql.startswith("EXPORT")
    assert not (tmp_path / "multi").exists()  # no version claimed, nothing staged or published


def test_a_query_over_the_cap_is_one_line_and_never_sent(sample_tokenizer, tmp_path, capsys):
    client = RecordingClient(estimate=10**12 + 1)
    status = run_main(multi.main, live_argv(tmp_path, sample_tokenizer, "--bigquery_destination", "p.d.t",
                                            "--bigquery_maximum_bytes_billed", str(10**12)), bigquery_client=client)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("error: --bigquery_maximum_bytes_billed: the query would process 1,000,000,000,001"
                             " bytes, over the cap of 1,000,000,000,000 bytes"), err
    assert [s.config.dry_run for s in client.sent] == [True]
    assert not (tmp_path / "multi" / "v1" / "manifest.json").exists()


@pytest.mark.parametrize("extra, needle", [
    ([], "--bigquery_project: needs one of --bigquery_destination"),
    (["--bigquery_destination", "p.d.t", "--bigquery_export_to", "gs://b-1/m/*.parquet"],
     "--bigquery_project: needs one of --bigquery_destination"),
    (["--bigquery_export_to", "gs://b-1/m/x'--*.parquet"], "--bigquery_export_to: not an export uri"),
    (["--bigquery_export_to", "gs://b-1/m/part.parquet"], "--bigquery_export_to: not an export uri"),
    (["--bigquery_destination", "p.d.t", "--bigquery_maximum_bytes_billed", "1e12"],
     "--bigquery_maximum_bytes_billed: invalid positive_int value"),
])
def test_live_flag_combinations_give_one_line_before_any_query(sample_tokenizer, tmp_path, capsys, extra, needle):
    client = RecordingClient()
    status = run_main(multi.main, live_argv(tmp_path, sample_tokenizer, *extra), bigquery_client=client)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and needle in err[0], err
    assert client.sent == []


def test_export_files_feed_the_same_pipeline(multi_snapshot, sample_tokenizer, tmp_path):
    params = github_sql.QueryParams(languages=("c", "java"), licenses=DEFAULT_LICENSE_KEYS)
    github_sql.export_snapshot_query(str(multi_snapshot), params, str(tmp_path / "export"), rows_per_file=20)
    assert len(list((tmp_path / "export").glob("part-*.parquet"))) > 1
    manifest = multi.main(["--bigquery_export", str(tmp_path / "export" / "*.parquet"), "--languages", "c",
                           "--output", str(tmp_path / "o"), "--tokenizer", str(sample_tokenizer),
                           "--no-near_dedup", "--num_shards", "2"])
    java = manifest["languages"]["java"]
    assert java["kept"]["documents"] == 0
    assert java["rejected"]["by_reason"] == {"read/language_not_selected": java["read"]["documents"]} != {}
    assert manifest["languages"]["c"]["kept"]["documents"] > 0


def test_one_worker_and_two_processes_give_identical_shards(multi_snapshot, sample_tokenizer, tmp_path):
    extra = ["--num_shards", "2", "--seq_len", "1024", "--languages", "c,cpp,javascript"]
    one = run_multi(multi_snapshot, sample_tokenizer, tmp_path / "one", *extra)
    two = run_multi(multi_snapshot, sample_tokenizer, tmp_path / "two", *extra,
                    "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert one["shards"] == two["shards"] and one["counts"] == two["counts"]
    assert one["languages"] == two["languages"]


# --- every selection rule on every path (issue 15 §1) -----------------------------------------

EXPORT_SCHEMA = github_sql.RESULT_SCHEMA.append(pa.field("binary", pa.bool_())).append(
    pa.field("symlink_target", pa.string()))
# (the change that breaks one rule, the read reject it must be) on rows of an export, run with
# --languages go,python --min_stars 100 and the default licenses and sizes.
EXPORT_VIOLATIONS = {
    "stars_below": (dict(stars=5), "too_few_stars"),
    "stars_null": (dict(stars=None), "stars_unknown"),
    "extension": (dict(path="docs/readme.txt"), "extension_not_selected"),
    "extension_of_another_language": (dict(path="x/main.go"), "language_mismatch"),
    "language": (dict(language="java", path="A.java"), "language_not_selected"),
    "license": (dict(license="gpl-3.0"), "license_not_allowed"),
    "size": (dict(content=""), "size_out_of_bounds"),
    "binary_column": (dict(binary=True), "binary"),
    "binary_content": (dict(content="x = 1\x00\n"), "binary"),
    "symlink": (dict(symlink_target="real.py"), "link"),
}


def _write_export(rows, path, schema=EXPORT_SCHEMA):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def _export_rows(multi_snapshot, tmp_path):
    """Real rows of the query (python and go, starred) plus one row per violation, made from a
    good python row: (good rows, {violation id: expected reason})."""
    params = github_sql.QueryParams(languages=("go", "python"), licenses=DEFAULT_LICENSE_KEYS, min_stars=100)
    github_sql.export_snapshot_query(str(multi_snapshot), params, str(tmp_path / "query"))
    good = [{**r, "binary": False, "symlink_target": None}
            for r in pq.read_table(tmp_path / "query").to_pylist()]
    template = next(r for r in good if r["language"] == "python")
    bad, expected = [], {}
    for name, (change, reason) in EXPORT_VIOLATIONS.items():
        row = {**template, "id": f"bad-{name}", "repo_name": f"violates/{name}",
               "content": template["content"] + f"\n# {name}\n", **change}
        bad.append(row)
        expected[f"{row['repo_name']}:{row['path']}"] = reason
    return good, bad, expected


def test_export_rows_that_break_a_rule_are_counted_rejects(multi_snapshot, sample_tokenizer, tmp_path):
    good, bad, expected = _export_rows(multi_snapshot, tmp_path)
    export = _write_export(good + bad, tmp_path / "export" / "part-00000.parquet")
    manifest = multi.main(["--bigquery_export", str(export), "--languages", "go,python", "--min_stars", "100",
                           "--output", str(tmp_path / "o"), "--tokenizer", str(sample_tokenizer),
                           "--no-near_dedup", "--no-decontaminate", "--num_shards", "1", "--write_rejects",
                           "--write_documents"])
    read_rejects = {r["id"]: r["reason"] for r in read_parquet_folder(tmp_path / "o" / "rejects")
                    if r["stage"] == "read"}
    assert read_rejects == expected  # each violation its own reason, and no good row rejected at read
    assert manifest["counts"]["read"]["kept"] == len(good)
    assert not {d["repo_name"] for d in read_parquet_folder(tmp_path / "o" / "documents")} & {
        r["repo_name"] for r in bad}
    # Recorded as applied: the selection's values; no stars table and no query on the export path.
    assert manifest["config"]["query"]["min_stars"] == 100 and manifest["config"]["stars_table"] is None
    assert manifest["inputs"] == {"source": "export", "pattern": str(export), "files": 1}


def _without_stars(rows):
    schema = EXPORT_SCHEMA.remove(EXPORT_SCHEMA.get_field_index("stars"))
    return [{k: v for k, v in r.items() if k != "stars"} for r in rows], schema


def _avro_export(rows, path):
    import fastavro

    fields = [{"name": n, "type": ["null", "string"]} for n in ("id", "repo_name", "path", "license",
                                                                "language", "content")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        fastavro.writer(handle, fastavro.parse_schema({"type": "record", "name": "row", "fields": fields}),
                        [{f["name"]: r[f["name"]] for f in fields} for r in rows])
    return path


@pytest.mark.parametrize("fmt, extra, needle", [
    ("parquet", ["--min_stars", "1"], "part-00000.parquet has no stars column, so --min_stars 1 cannot be applied"),
    ("avro", ["--min_stars", "3"], "part-00000.avro has no stars column, so --min_stars 3 cannot be applied"),
    ("parquet_no_content", [], "part-00000.parquet has no content column"),
    ("not_parquet", [], "part-00000.parquet: not a readable Parquet file"),
    ("parquet", ["--stars_table", "my.stars"], "--stars_table: not applied to --bigquery_export rows"),
])
def test_an_export_that_cannot_carry_a_rule_is_one_line_before_any_work(
        multi_snapshot, sample_tokenizer, tmp_path, capsys, fmt, extra, needle):
    good, _, _ = _export_rows(multi_snapshot, tmp_path)
    rows, schema = _without_stars(good[:3])
    if fmt == "avro":
        export = _avro_export(rows, tmp_path / "export" / "part-00000.avro")
    elif fmt == "not_parquet":
        export = tmp_path / "export" / "part-00000.parquet"
        export.parent.mkdir()
        export.write_bytes(b"PAR1 this is not parquet")
    else:
        if fmt == "parquet_no_content":
            rows, schema = [{k: v for k, v in r.items() if k != "content"} for r in rows], schema.remove(
                schema.get_field_index("content"))
        export = _write_export(rows, tmp_path / "export" / "part-00000.parquet", schema)
    status = multi.run(["--bigquery_export", str(export.parent / ("*" + export.suffix)),
                        "--output", str(tmp_path / "o"), "--tokenizer", str(sample_tokenizer), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "o").exists() and not (tmp_path / "_staging").exists()


def test_an_export_without_stars_passes_the_check_when_no_star_rule_applies(multi_snapshot, tmp_path):
    good, _, _ = _export_rows(multi_snapshot, tmp_path)
    export = _avro_export(_without_stars(good[:3])[0], tmp_path / "export" / "part-00000.avro")
    args, _ = multi.parse_args(["--bigquery_export", str(export), "--output", str(tmp_path / "o"),
                                "--tokenizer", "t.model"])
    assert multi.read_config(args).stars_table is None


def _python_file(selected, repo, index=0):
    """The content id and path of the ``index``-th python file (by path) of ``repo`` the unaltered
    query selects."""
    return sorted((r["path"], r["id"]) for r in selected.values()
                  if r["repo_name"] == repo and r["language"] == "python")[index][::-1]


def test_snapshot_rows_that_break_a_rule_never_reach_the_output(
        multi_snapshot, multi_expected, sample_tokenizer, tmp_path):
    """The query removes them (a NUL byte the binary column missed is the row rules' work); the
    manifest says every rule applied."""
    tables = {n: pq.read_table(multi_snapshot / f"{n}.parquet").to_pylist() for n in ("files", "contents")}
    stars = {r["repo_name"]: r["watch_count"] for r in pq.read_table(multi_snapshot / "sample_repos.parquet").to_pylist()}
    selection = ({e: lang for e, lang in EXTENSIONS.items() if lang in ("go", "python")}, ("bsd-3-clause", "mit"))
    unaltered = multi_expected(multi_snapshot, *selection, min_stars=1000)
    link_id, link_path = _python_file(unaltered, "benjaminp/six")
    binary_id, binary_path = _python_file(unaltered, "ultrajson/ultrajson")
    nul_id, nul_path = _python_file(unaltered, "benjaminp/six", 1)
    for f in tables["files"]:
        if f["id"] == link_id:
            f["symlink_target"] = "elsewhere.py"
    for c in tables["contents"]:
        if c["id"] == binary_id:
            c["binary"] = True
        if c["id"] == nul_id:
            c["content"] = c["content"] + "\x00"
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for path in multi_snapshot.glob("*.parquet"):
        if path.stem in tables:
            pq.write_table(pa.Table.from_pylist(tables[path.stem], schema=pq.read_schema(path)), snapshot / path.name)
        else:
            (snapshot / path.name).write_bytes(path.read_bytes())
    manifest = run_multi(snapshot, sample_tokenizer, tmp_path / "o", "--languages", "go,python", "--min_stars",
                         "1000", "--licenses", "mit,bsd-3-clause", "--no-near_dedup", "--no-decontaminate",
                         "--num_shards", "1", "--write_documents", "--write_rejects")
    docs = read_parquet_folder(tmp_path / "o" / "documents")
    rejects = read_parquet_folder(tmp_path / "o" / "rejects")
    seen = {d["id"] for d in docs} | {r["id"] for r in rejects}
    assert {f"benjaminp/six:{link_path}", f"ultrajson/ultrajson:{binary_path}"}.isdisjoint(seen)
    assert [(r["stage"], r["reason"]) for r in rejects if r["id"] == f"benjaminp/six:{nul_path}"] == [
        ("read", "binary")]
    assert docs and all(d["stars"] >= 1000 and stars[d["repo_name"]] >= 1000 for d in docs)
    assert all(d["license"] in ("MIT", "BSD-3-Clause") for d in docs)
    assert all(github_sql.language_of(d["path"], ("go", "python")) == d["language"] for d in docs)
    expected = multi_expected(snapshot, *selection, min_stars=1000)
    assert manifest["inputs"]["query"]["rows"] == len(expected)
    assert {f"{r['repo_name']}:{r['path']}" for r in expected.values()} >= seen
    assert any(stars[r["repo_name"]] < 1000 for r in multi_expected(multi_snapshot, *selection).values())
    applied = manifest["config"]["query"]
    assert (applied["min_stars"], applied["licenses"], applied["min_bytes"], applied["max_bytes"]) == (
        1000, ["bsd-3-clause", "mit"], 1, 1 << 20)
    assert sorted(set(applied["extension_languages"])) == ["go", "python"]
    assert manifest["config"]["stars_table"] == manifest["inputs"]["query"]["stars_table"] == "sample_repos"


def test_a_selection_that_keeps_nothing_fails_unless_allow_empty(
        multi_snapshot, sample_tokenizer, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLUICE_PROGRESS_S", "0")
    argv = ["--bigquery_snapshot", str(multi_snapshot), "--tokenizer", str(sample_tokenizer), "--languages", "go",
            "--licenses", "mit", "--min_stars", "100000", "--num_shards", "1", "--no-near_dedup"]
    status = multi.run([*argv, "--output", str(tmp_path / "multi" / "v1")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == [
        "error: nothing to publish: no record was read from the input (--languages go, --licenses mit,"
        " --min_stars 100000, --min_file_bytes 1, --max_file_bytes 1048576); pass --allow_empty to publish"
        " an empty version"], err
    assert not (tmp_path / "multi" / "v1").exists()
    manifest = multi.main([*argv, "--output", str(tmp_path / "multi" / "v2"), "--allow_empty"])
    assert manifest["config"]["allow_empty"] is True and manifest["totals"]["documents"] == 0
    assert manifest["inputs"]["query"]["rows"] == 0


def test_gpl_licenses_select_github_keys(multi_snapshot, sample_tokenizer, tmp_path):
    """--licenses gpl-3.0 is GPL-3.0-only, which GitHub's licenses table calls "gpl-3.0": the query
    must ask for that key, or a GPL allow-list selects nothing on the snapshot and live paths."""
    from transforms.sources import github_sql

    args, _ = multi.parse_args(["--bigquery_snapshot", str(multi_snapshot), "--output", str(tmp_path / "multi" / "v1"),
                                "--tokenizer", str(sample_tokenizer), "--licenses", "gpl-3.0"])
    params, allowed = multi.query_params(args)
    assert "gpl-3.0" in params.licenses and allowed == frozenset({"GPL-3.0-only"})
    con = github_sql.snapshot_connection(str(multi_snapshot))
    repos = {row["repo_name"] for batch in github_sql.run_snapshot_query(con, params) for row in batch.to_pylist()}
    assert repos == {"Alir3z4/html2text"}
