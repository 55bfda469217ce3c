"""The tokenizer pipeline on the real samples: a valid model that round-trips every sample file,
from the Mono samples and (--source multi) from the Multi snapshot."""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest

from pipelines import tokenizer as tokenizer_pipeline
from pipelines.driver import run_main
from schemas import dataset_version as dv
from schemas import tokens
from schemas.tokenizer import Tokenizer
from tests.transforms.sources.bigquery_double import RecordingClient
from transforms.sources.archive_reader import decode_source
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.sources.github_sql import DEFAULT_EXTENSIONS, SNAPSHOT_TABLES

MULTI_VOCAB = 1000
MULTI_EXTENSIONS = {ext: lang for lang, exts in DEFAULT_EXTENSIONS.items() for ext in exts}
MULTI_LICENSE_KEYS = ("0bsd", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "isc", "mit",
                      "unlicense", "zlib")


def sample_texts(sample_manifest):
    """Every text file of every sample archive, Python or not."""
    texts = {}
    for archive in sorted((sample_manifest.parent / "archives").glob("*.tar.gz")):
        for member in iter_members(str(archive), ArchiveLimits()):
            if member.data is not None:
                text, reason = decode_source(member.data)
                if reason is None:
                    texts[f"{archive.name}:{member.path}"] = text
    return texts


def test_round_trip_byte_for_byte_on_every_sample_file(sample_manifest, sample_tokenizer):
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    texts = sample_texts(sample_manifest)
    assert len(texts) > 700
    control = {tokens.PAD_ID, tokens.UNKNOWN_ID, tokens.END_OF_TEXT_ID}
    for name, text in texts.items():
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids).encode("utf-8") == text.encode("utf-8"), name
        assert not control.intersection(ids), name


def test_model_layout_and_manifest(sample_tokenizer):
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    assert tokenizer.vocab_size == 4000
    assert tokenizer.id_to_piece(tokenizer.eot_id) == tokens.END_OF_TEXT
    assert tokenizer.language_tag_id("python") != tokenizer.language_tag_id("java")
    manifest = dv.read_manifest(str(sample_tokenizer.parent))
    assert manifest["tokenizer"]["vocab_size"] == 4000
    assert manifest["sample"]["documents"] == manifest["counts"]["exact_dedup"]["kept"]
    assert manifest["counts"]["license"]["license_not_allowed"] == 2
    assert (sample_tokenizer.parent / "tokenizer.vocab").read_text().count("\n") == 4000


def test_indentation_uses_whitespace_run_tokens(sample_tokenizer):
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    ids = tokenizer.encode("def f():\n        return 1\n")
    pieces = [tokenizer.id_to_piece(i) for i in ids]
    assert "\u2581" * 8 in pieces


@pytest.fixture(scope="module")
def multi_tokenizer(multi_snapshot, tmp_path_factory):
    """tokenizer.model trained by ``pipelines.tokenizer --source multi`` on the Multi snapshot."""
    out = tmp_path_factory.mktemp("multi_tokenizer")
    tokenizer_pipeline.main(["--source", "multi", "--bigquery_snapshot", str(multi_snapshot),
                             "--output", str(out), "--vocab_size", str(MULTI_VOCAB)])
    return out / "tokenizer.model"


def test_tokenizer_trained_with_source_multi(multi_tokenizer, multi_snapshot, multi_expected):
    out = multi_tokenizer.parent
    manifest = dv.read_manifest(str(out))
    assert manifest["dataset"] == "tokenizer" and manifest["config"]["source"] == "multi"
    assert manifest["tokenizer"]["vocab_size"] == MULTI_VOCAB
    assert manifest["tokenizer"]["sha256"] == hashlib.sha256(multi_tokenizer.read_bytes()).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "tokenizer.model", "tokenizer.vocab"]
    # The inputs section is the Multi pipeline's: the snapshot's tables and the query's result.
    inputs = manifest["inputs"]
    assert inputs["source"] == "snapshot" and set(inputs["tables"]) == set(SNAPSHOT_TABLES)
    for name, table in inputs["tables"].items():
        data = (multi_snapshot / f"{name}.parquet").read_bytes()
        assert table["sha256"] == hashlib.sha256(data).hexdigest()
    expected = multi_expected(multi_snapshot, MULTI_EXTENSIONS, MULTI_LICENSE_KEYS)
    assert inputs["query"]["rows"] == len(expected) == manifest["counts"]["read"]["kept"]
    # Row rules, then the quality filter (the minified js-cookie builds), then exact dedup.
    counts = manifest["counts"]
    assert counts["quality"]["kept"] + counts["quality"]["max_line_length"] <= counts["read"]["kept"]
    assert counts["quality"]["max_line_length"] >= 1
    assert manifest["sample"]["documents"] == counts["exact_dedup"]["kept"] > 0
    assert (out / "tokenizer.vocab").read_text().count("\n") == MULTI_VOCAB


def test_source_multi_round_trips_every_text_of_the_snapshot(multi_tokenizer, multi_snapshot):
    tokenizer = Tokenizer(multi_tokenizer.read_bytes())
    assert tokenizer.id_to_piece(tokenizer.eot_id) == tokens.END_OF_TEXT
    rows = pq.read_table(multi_snapshot / "contents.parquet").to_pylist()
    texts = {row["id"]: row["content"] for row in rows if isinstance(row["content"], str)}
    assert len(texts) > 300
    control = {tokens.PAD_ID, tokens.UNKNOWN_ID, tokens.END_OF_TEXT_ID}
    for content_id, text in texts.items():
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids).encode("utf-8") == text.encode("utf-8"), content_id
        assert not control.intersection(ids), content_id


def test_source_multi_takes_the_multi_read_flags(multi_snapshot, tmp_path):
    manifest = tokenizer_pipeline.main([
        "--source", "multi", "--bigquery_snapshot", str(multi_snapshot), "--output", str(tmp_path / "t"),
        "--vocab_size", "600", "--languages", "go,python", "--sample_docs", "5"])
    assert manifest["inputs"]["query"]["parameters"]["extension_languages"] == ["go", "python"]
    assert manifest["config"]["curation"]["params"]["languages"] == ["go", "python"]
    assert manifest["sample"]["documents"] == 5 < manifest["counts"]["exact_dedup"]["kept"]
    assert not (tmp_path / "t" / "_run").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--languages", "rust"], "--languages: unknown rust"),
    (["--min_stars", "1000000000"], "--bigquery_snapshot: no document passed the filters"),
    (["--bigquery_export", "x.parquet"], "exactly one of"),
])
def test_source_multi_bad_flags_give_one_line(multi_snapshot, tmp_path, capsys, argv, needle):
    status = tokenizer_pipeline.run(["--source", "multi", "--bigquery_snapshot", str(multi_snapshot),
                                     "--output", str(tmp_path / "t"), "--vocab_size", "600", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and needle in err[-1], err
    assert not (tmp_path / "t" / "manifest.json").exists()


def test_source_multi_dry_run_only_prints_the_estimate_and_claims_nothing(tmp_path, capsys):
    client = RecordingClient(estimate=2_000_000_000_000)
    status = run_main(tokenizer_pipeline.main, [
        "--source", "multi", "--bigquery_project", "p", "--bigquery_export_to", "gs://b-1/multi/part-*.parquet",
        "--bigquery_dry_run_only", "--output", str(tmp_path / "tokenizer" / "v1")], bigquery_client=client)
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0 and json.loads(out[-1])["bigquery_dry_run"]["bytes_estimated"] == 2_000_000_000_000
    assert [s.config.dry_run for s in client.sent] == [True]
    assert not (tmp_path / "tokenizer").exists()
