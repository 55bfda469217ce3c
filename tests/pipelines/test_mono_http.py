"""Mono (and the tokenizer's --source mono) over archive URLs served by a real loopback HTTP server:
retries counted, nothing read twice, the token never written anywhere, and the loss gate."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import mono, tokenizer
from pipelines.driver import UsageError

SIX, IDNA, TOMLI = "six-1.16.0.tar.gz", "idna-3.7.tar.gz", "tomli-2.0.1.tar.gz"
TOKEN = "ghp_mono-test-token-9876543210"
FAST = ["--archive_retries", "2", "--archive_backoff_s", "0.01", "--archive_backoff_max_s", "0.05",
        "--archive_timeout_s", "2"]


def write_manifest(path, server, rows) -> str:
    """A manifest of (repo, license, path on the server) rows, archives as loopback URLs."""
    lines = [json.dumps({"repo_name": name, "stars": 10, "license": license_, "archive": server.url(url_path),
                         "ref": "v1"}) for name, license_, url_path in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_mono(manifest, tokenizer_model, out, *extra) -> dict:
    return mono.main(["--input", manifest, "--output", str(out), "--tokenizer", str(tokenizer_model),
                      "--num_shards", "2", "--seq_len", "512", *FAST, *extra])


def test_loopback_archives_with_retries_and_a_token(archive_server, sample_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("SLUICE_TEST_TOKEN", TOKEN)
    archive_server.script(f"/a/{SIX}", ("status", 503, {}), ("status", 503, {}), "ok")
    archive_server.script(f"/a/{IDNA}", ("cut",), "ok")  # license detection reads it first
    manifest = write_manifest(tmp_path / "manifest.jsonl", archive_server, [
        ("benjaminp/six", "mit", f"/a/{SIX}"), ("kjd/idna", None, f"/a/{IDNA}"),
        ("hukkin/tomli", "mit", f"/a/{TOMLI}"), ("gone/repo", "mit", "/a/nope.tar.gz")])
    out = tmp_path / "mono" / "v1"
    published = run_mono(manifest, sample_tokenizer, out, "--github_token_env", "SLUICE_TEST_TOKEN",
                         "--github_token_hosts", "127.0.0.1", "--write_documents", "--write_rejects")
    counts = published["counts"]
    assert counts["read"]["archive_retries"] == 2 and counts["license"]["archive_retries"] == 1
    assert counts["read"]["archives_complete"] == 3 and counts["read"]["archive_not_found"] == 1
    assert counts["license"]["detected"] == 1
    gate = published["inputs"]["archives"]["loss_gate"]
    assert gate["unreadable"] == 0 and gate["attempted"] == 4
    docs = pa.concat_tables([pq.read_table(p) for p in sorted((out / "documents").glob("*.parquet"))])
    ids = docs.column("id").to_pylist()
    assert len(ids) == len(set(ids)) and {i.split(":")[0] for i in ids} == {"benjaminp/six", "kjd/idna", "hukkin/tomli"}
    # The token went to the server (its host is listed) and nowhere else: not in any published file.
    assert {auth for _, _, auth in archive_server.requests} == {f"Bearer {TOKEN}"}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and not [p for p in files if TOKEN.encode() in p.read_bytes()]
    assert published["config"]["fetch"]["token_env"] == "SLUICE_TEST_TOKEN"


@pytest.fixture
def one_always_unreadable(archive_server, tmp_path):
    archive_server.script(f"/down/{SIX}", ("status", 503, {}))
    return write_manifest(tmp_path / "manifest.jsonl", archive_server, [
        ("always/six", "mit", f"/down/{SIX}"), ("hukkin/tomli", "mit", f"/a/{TOMLI}"),
        ("benjaminp/six", "mit", f"/a/{SIX}")])


@pytest.mark.parametrize("flags, message", [
    ([], "--max_unreadable_share: 1 of 3 archives (33.33%) unreadable after 2 retries, over the limit 0.001:"
         " always/six; nothing was published"),
    (["--max_unreadable", "0", "--max_unreadable_share", "1"], "--max_unreadable: 1 of 3 archives"),
])
def test_the_loss_gate_fails_the_run_unpublished(one_always_unreadable, sample_tokenizer, tmp_path, flags, message):
    out = tmp_path / "mono" / "v1"
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        run_mono(one_always_unreadable, sample_tokenizer, out, *flags)
    assert not (out / "manifest.json").exists()


def test_the_loss_gate_passes_within_its_limits(one_always_unreadable, sample_tokenizer, tmp_path):
    out = tmp_path / "mono" / "v1"
    published = run_mono(one_always_unreadable, sample_tokenizer, out, "--max_unreadable", "1",
                         "--max_unreadable_share", "0.5")
    assert published["counts"]["read"]["archive_unreadable"] == 1
    assert published["inputs"]["archives"]["loss_gate"] == {
        "unreadable": 1, "attempted": 3, "share": pytest.approx(1 / 3), "max_unreadable": 1,
        "max_unreadable_share": 0.5}


def test_the_tokenizer_has_the_same_gate(one_always_unreadable, tmp_path):
    out = tmp_path / "tokenizer" / "v1"
    with pytest.raises(UsageError, match="^--max_unreadable_share: 1 of 3 archives"):
        tokenizer.main(["--source", "mono", "--input", one_always_unreadable, "--output", str(out),
                        "--vocab_size", "1000", *FAST])
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("flags, message", [
    (["--github_token_env", "SLUICE_NO_SUCH_VARIABLE"], "--github_token_env: the environment variable"),
    (["--github_token_file", "/nonexistent/token"], "--github_token_file: cannot read /nonexistent/token"),
    (["--max_unreadable_share", "2"], "argument --max_unreadable_share: must be between 0 and 1"),
    (["--archive_timeout_s", "0"], "--archive_timeout_s: must be > 0"),
])
def test_bad_fetch_flags_are_one_line(sample_manifest, tmp_path, flags, message, monkeypatch):
    monkeypatch.delenv("SLUICE_NO_SUCH_VARIABLE", raising=False)
    with pytest.raises(UsageError, match=message):
        mono.main(["--input", str(sample_manifest), "--output", str(tmp_path / "v1"), "--tokenizer", "x", *flags])


def test_instruct_code_tasks_have_the_same_gate(one_always_unreadable, sample_tokenizer, tmp_path):
    """The instruct pipeline's code tasks read a Mono manifest's archives with the same retries and
    loss gate: a lost archive fails the run unpublished, and within the limits the gate's numbers
    go into the manifest beside the archives' fingerprint."""
    import pathlib

    import yaml

    from pipelines import instruct

    samples = pathlib.Path(__file__).resolve().parents[2] / "samples" / "instruct" / "tasks.yaml"
    task = next(t for t in yaml.safe_load(samples.read_text())["tasks"] if t["name"] == "code_docstring_to_function")
    task["source"]["splits"]["train"] = one_always_unreadable
    registry = tmp_path / "tasks.yaml"
    registry.write_text(yaml.safe_dump({"tasks": [task]}))
    argv = ["--tasks", str(registry), "--tokenizer", str(sample_tokenizer), "--num_shards", "1", *FAST]
    out = tmp_path / "instruct" / "v1"
    with pytest.raises(UsageError, match="^--max_unreadable_share: 1 of 3 archives .* always/six; nothing was"):
        instruct.main([*argv, "--output", str(out)])
    assert not (out / "manifest.json").exists()
    published = instruct.main([*argv, "--output", str(tmp_path / "instruct" / "v2"), "--max_unreadable_share", "0.5"])
    manifest = published["all"]
    assert manifest["inputs"]["code_archives"]["loss_gate"]["unreadable"] == 1
    assert manifest["config"]["code_fetch"]["retries"] == 2
