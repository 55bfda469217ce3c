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
