"""The Mono pipeline end to end on the real samples: outputs, licenses, packing, determinism."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import mono
from schemas.packed_stream import read_arrow_stream, read_tfrecord_shard
from schemas.tokenizer import Tokenizer
from transforms.streams.shuffle import shuffle_key
from transforms.filters.licenses import DEFAULT_ALLOWED, is_allowed, normalize_allow_list


def run_mono(manifest, tokenizer, output, *extra):
    return mono.main(["--input", str(manifest), "--output", str(output), "--tokenizer",
                      str(tokenizer), *extra])


@pytest.fixture(scope="module")
def padded_run(sample_manifest, sample_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("mono_padded")
    manifest = run_mono(sample_manifest, sample_tokenizer, out, "--num_shards", "3",
                        "--seq_len", "512", "--pack_tail", "pad", "--seed", "7",
                        "--write_documents", "--write_rejects")
    return out, manifest


def read_parquet_folder(folder):
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]).to_pylist()


def test_outputs_and_manifest(padded_run, published_output_check):
    out, manifest = padded_run
    published_output_check(out, manifest, num_shards=3)
    counts = manifest["counts"]
    assert counts["license"]["license_not_allowed"] == 2  # certifi (MPL-2.0), html2text (GPL-3.0)
    assert counts["read"]["archives_complete"] == 12
    assert counts["tokenize"]["kept"] == manifest["totals"]["documents"]
    assert not list(out.glob(".tmp-*")) and not (out / "_run").exists()


def test_no_document_outside_the_allow_list(padded_run):
    out, _ = padded_run
    allowed = normalize_allow_list(DEFAULT_ALLOWED)
    docs = read_parquet_folder(out / "documents")
    assert docs
    assert all(is_allowed(doc["license"], allowed) for doc in docs)
    repos = {doc["repo_name"] for doc in docs}
    assert "certifi/python-certifi" not in repos and "Alir3z4/html2text" not in repos
    detected = {doc["repo_name"]: doc for doc in docs if doc["license_source"] == "detected"}
    assert detected and all(doc["license_confidence"] >= 0.8 for doc in detected.values())
    rejects = read_parquet_folder(out / "rejects")
    by_id = {(r["id"], r["reason"]): r for r in rejects}
    assert by_id[("certifi/python-certifi", "license_not_allowed")]["detail"] == "MPL-2.0"
    assert by_id[("Alir3z4/html2text", "license_not_allowed")]["detail"].startswith("GPL-3.0")


def test_rejects_match_the_counters(padded_run):
    out, manifest = padded_run
    rejects = read_parquet_folder(out / "rejects")
    tally = {}
    for r in rejects:
        tally[(r["stage"], r["reason"])] = tally.get((r["stage"], r["reason"]), 0) + 1
    for (stage, reason), n in tally.items():
        assert manifest["counts"][stage][reason] == n, (stage, reason)


def test_packing_loses_and_duplicates_no_token(padded_run, sample_tokenizer):
    out, manifest = padded_run
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    docs = read_parquet_folder(out / "documents")
    expected = {i: [] for i in range(3)}
    for doc in sorted(docs, key=lambda d: (shuffle_key(7, d["id"]), d["id"])):
        expected[shuffle_key(7, doc["id"]) % 3].append(doc["text"])
    total_tokens = 0
    for shard in range(3):
        ids, mask = read_arrow_stream(out / f"train-{shard:05d}-of-00003.arrow")
        tf_ids, tf_mask = read_tfrecord_shard(open(out / f"train-{shard:05d}-of-00003.tfrecord", "rb"))
        np.testing.assert_array_equal(ids, tf_ids)
        np.testing.assert_array_equal(mask, tf_mask)
        stream = ids.reshape(-1)[mask.reshape(-1) == 1]
        assert np.all(ids.reshape(-1)[mask.reshape(-1) == 0] == tokenizer.pad_id)
        total_tokens += stream.size
        want = np.concatenate(
            [np.append(tokenizer.encode_array(text), tokenizer.eot_id) for text in expected[shard]]
            or [np.zeros(0, np.int32)]
        )
        np.testing.assert_array_equal(stream, want)
        pieces = np.split(stream, np.flatnonzero(stream == tokenizer.eot_id) + 1)[:-1]
        assert [tokenizer.decode(p[:-1]) for p in pieces] == expected[shard]
    assert total_tokens == manifest["totals"]["document_tokens"]
    assert manifest["totals"]["dropped_tail_tokens"] == 0
    assert manifest["totals"]["tokens"] == total_tokens + manifest["totals"]["padding_tokens"]


def test_tfrecord_is_a_tf_train_example_stream(padded_run):
    tf = pytest.importorskip("tensorflow", reason="TensorFlow not installed (pip install '.[test]')")
    out, manifest = padded_run
    path = str(out / "train-00000-of-00003.tfrecord")
    spec = {"input_ids": tf.io.FixedLenFeature([512], tf.int64),
            "loss_mask": tf.io.FixedLenFeature([512], tf.int64)}
    rows = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(path)]
    assert len(rows) == manifest["shards"][0]["records"]
    ids, _ = read_arrow_stream(out / "train-00000-of-00003.arrow")
    np.testing.assert_array_equal(np.stack([r["input_ids"].numpy() for r in rows]), ids)


def test_arrow_loads_with_plain_pyarrow(padded_run):
    out, manifest = padded_run
    with pa.OSFile(str(out / "train-00001-of-00003.arrow")) as f:
        table = pa.ipc.open_stream(f).read_all()
    assert table.schema.field("input_ids").type == pa.list_(pa.int32(), 512)
    assert table.num_rows == manifest["shards"][1]["records"]


@pytest.fixture(scope="module")
def forked_manifest(sample_manifest, tmp_path_factory):
    """The samples plus a fork of attrs whose Python files were lightly edited: near-duplicates."""
    folder = tmp_path_factory.mktemp("forked")
    source = next((sample_manifest.parent / "archives").glob("attrs-*.tar.gz"))
    with tarfile.open(source) as original, tarfile.open(folder / "attrs-fork.tar.gz", "w:gz") as fork:
        for info in original.getmembers():
            data = original.extractfile(info).read() if info.isreg() else None
            info.name = "attrs-fork-1.0/" + info.name.split("/", 1)[-1] if "/" in info.name else info.name
            if data is not None and info.name.endswith(".py") and len(data) > 2000:
                data = b"# forked\n" + data.replace(b"\n\n", b"\n\n# fork\n", 1)
                info.size = len(data)
            fork.addfile(info, io.BytesIO(data) if data is not None else None)
    lines = []
    for line in sample_manifest.read_text().splitlines():
        record = json.loads(line)
        record["archive"] = str(sample_manifest.parent / record["archive"])
        lines.append(json.dumps(record))
    lines.append(json.dumps({"repo_name": "someone/attrs-fork", "stars": 3, "license": "mit",
                             "archive": "attrs-fork.tar.gz", "ref": "v1.0"}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "manifest.jsonl"


def test_near_duplicates_of_a_fork_are_removed(forked_manifest, sample_tokenizer, tmp_path):
    manifest = run_mono(forked_manifest, sample_tokenizer, tmp_path / "out", "--num_shards", "2",
                        "--write_rejects", "--write_documents")
    rejects = read_parquet_folder(tmp_path / "out" / "rejects")
    near = {r["id"]: r["detail"] for r in rejects if r["reason"] == "near_duplicate"}
    exact = {r["id"] for r in rejects if r["reason"] == "exact_duplicate"}
    assert near and all(i.startswith("someone/attrs-fork:") for i in near)
    assert all(kept == "python-attrs/attrs:" + i.split(":", 1)[1] for i, kept in near.items())
    assert exact  # files the fork did not touch are exact copies
    kept = {d["id"] for d in read_parquet_folder(tmp_path / "out" / "documents")}
    assert not kept & set(near)
    report = manifest["near_dedup"]
    assert report["connected_components"]["converged"]
    assert report["removed"] == len(near) == manifest["counts"]["near_dedup"]["near_duplicate"]
    assert report["components"] == manifest["counts"]["near_dedup"]["components"] > 0


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("train-*"))}


def test_one_worker_and_two_processes_give_identical_shards(forked_manifest, sample_tokenizer, tmp_path):
    one = run_mono(forked_manifest, sample_tokenizer, tmp_path / "one", "--num_shards", "2",
                   "--seq_len", "1024")
    two = run_mono(forked_manifest, sample_tokenizer, tmp_path / "two", "--num_shards", "2",
                   "--seq_len", "1024", "--direct_running_mode=multi_processing",
                   "--direct_num_workers=2")
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert one["shards"] == two["shards"] and one["counts"] == two["counts"]
    assert one["totals"]["dropped_tail_tokens"] > 0
    assert one["counts"]["near_dedup"]["near_duplicate"] > 0


def test_refuses_a_published_output(sample_manifest, sample_tokenizer, padded_run, capsys):
    out, _ = padded_run
    before = (out / "manifest.json").read_bytes()
    status = mono.run(["--input", str(sample_manifest), "--output", str(out), "--tokenizer",
                       str(sample_tokenizer)])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already published" in err[0] and "immutable" in err[0]
    assert (out / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("argv, needle", [
    (["--input", "/nonexistent/manifest.jsonl"], "--input"),
    (["--licenses", "mit,not-a-license"], "not-a-license"),
])
def test_bad_flags_give_one_line(sample_manifest, sample_tokenizer, tmp_path, capsys, argv, needle):
    base = {"--input": str(sample_manifest), "--output": str(tmp_path / "o"),
            "--tokenizer": str(sample_tokenizer)}
    base.update(dict(zip(argv[::2], argv[1::2])))
    status = mono.run([x for kv in base.items() for x in kv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and needle in err[0]


def hostile_archive(path):
    """A codeload-shaped archive with every kind of member Sluice must refuse."""
    def add(tar, name, data=b"", **attrs):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        for key, value in attrs.items():
            setattr(info, key, value)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w:gz") as tar:
        add(tar, "evil-1.0/good.py", b"def ok():\n    return 1\n")
        add(tar, "evil-1.0/../../escape.py", b"print('escaped')\n")
        add(tar, "/abs/path.py", b"print('abs')\n")
        add(tar, "evil-1.0/link.py", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add(tar, "evil-1.0/hard.py", type=tarfile.LNKTYPE, linkname="evil-1.0/good.py")
        add(tar, "evil-1.0/big.py", b"x = 1\n" * 400_000)
        add(tar, "evil-1.0/latin1.py", "s = 'café'\n".encode("latin-1"))
        add(tar, "evil-1.0/blob.py", b"\x00\x01\x02")
        add(tar, "evil-1.0/LICENSE", b"MIT License\n")


def test_hostile_inputs_are_counted_rejects(sample_manifest, sample_tokenizer, tmp_path):
    archives = tmp_path / "in"
    archives.mkdir()
    hostile_archive(archives / "evil.tar.gz")
    # A real sample archive cut in half: a truncated download.
    sample = next((sample_manifest.parent / "archives").glob("attrs-*.tar.gz")).read_bytes()
    (archives / "truncated.tar.gz").write_bytes(sample[: len(sample) // 2])
    lines = [
        json.dumps({"repo_name": "evil/evil", "stars": 5, "license": "mit", "archive": "evil.tar.gz"}),
        json.dumps({"repo_name": "cut/attrs", "stars": 5, "license": "MIT", "archive": "truncated.tar.gz"}),
        json.dumps({"repo_name": "gone/missing", "stars": 5, "license": "mit", "archive": "nope.tar.gz"}),
        "{not json",
        json.dumps({"repo_name": "no-slash", "license": "mit", "archive": "x.tar.gz"}),
    ]
    (archives / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    out = tmp_path / "out"
    # One 8-token file survives, under one sequence: --allow_empty publishes it (see the next test).
    manifest = run_mono(archives / "manifest.jsonl", sample_tokenizer, out, "--num_shards", "2",
                        "--max_file_bytes", "100000", "--write_rejects", "--write_documents", "--allow_empty")
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert sorted(p.name for p in archives.iterdir()) == ["evil.tar.gz", "manifest.jsonl", "truncated.tar.gz"]
    reasons = {(r["id"], r["reason"]) for r in read_parquet_folder(out / "rejects")}
    assert {
        ("evil/evil:evil-1.0/../../escape.py", "path_traversal"),
        ("evil/evil:/abs/path.py", "absolute_path"),
        ("evil/evil:evil-1.0/link.py", "link"),
        ("evil/evil:evil-1.0/hard.py", "link"),
        ("evil/evil:big.py", "too_large"),
        ("evil/evil:latin1.py", "invalid_utf8"),
        ("evil/evil:blob.py", "binary"),
        ("gone/missing", "archive_not_found"),
        ("manifest:manifest.jsonl:4", "invalid_json"),
        ("manifest:manifest.jsonl:5", "bad_repo_name"),
    } <= reasons
    assert ("cut/attrs", "archive_truncated") in reasons
    kept = {d["id"] for d in read_parquet_folder(out / "documents")}
    assert "evil/evil:good.py" in kept
    assert not any(i.startswith("cut/attrs:") for i in kept)  # withdrawn: the archive is not whole
    assert manifest["inputs"]["archives"]["status"]["complete"] == 1


def test_a_run_that_keeps_nothing_fails_naming_the_stage_unless_allow_empty(
        sample_manifest, sample_tokenizer, tmp_path, capsys, monkeypatch, published_output_check):
    monkeypatch.setenv("SLUICE_PROGRESS_S", "0")  # stderr holds the error line alone
    repos = sum(1 for line in sample_manifest.read_text().splitlines() if line.strip())
    root = tmp_path / "root"
    argv = ["--input", str(sample_manifest), "--tokenizer", str(sample_tokenizer), "--min_stars", "100000",
            "--num_shards", "2"]
    status = mono.run([*argv, "--output", str(root / "mono" / "v1")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err == [
        f"error: nothing to publish: stage `stars` rejected all {repos} repositories (too_few_stars {repos};"
        " --min_stars 100000); pass --allow_empty to publish an empty version"], err
    assert not (root / "mono" / "v1").exists()  # nothing published, not even a version folder

    manifest = mono.main([*argv, "--output", str(root / "mono" / "v2"), "--allow_empty"])
    published_output_check(root / "mono" / "v2", manifest, num_shards=2)
    assert manifest["config"]["allow_empty"] is True and manifest["totals"]["records"] == 0
    assert manifest["counts"]["stars"] == {"too_few_stars": repos}
