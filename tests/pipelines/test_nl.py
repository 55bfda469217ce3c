"""The NL pipeline end to end on the real Pile-format samples: outputs, per-set counts, exact
dedup, set selection, damaged inputs, determinism, and the tokenizer trained with --source nl."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipelines import nl
from schemas import dataset_version as dv
from schemas import tokens
from schemas.packed_stream import read_arrow_stream
from schemas.pile import PILE_SET_NAMES
from schemas.tokenizer import Tokenizer


def run_nl(nl_input, tokenizer, output, *extra):
    return nl.main(["--input", nl_input, "--output", str(output), "--tokenizer", str(tokenizer), *extra])


def records(nl_files):
    """(id, text, set) of every line of the samples, read directly with zstandard and json."""
    out = []
    for path in nl_files:
        with path.open("rb") as handle:
            content = zstandard.ZstdDecompressor().stream_reader(handle).read()
        for number, line in enumerate(content.splitlines()):
            record = json.loads(line)
            out.append((f"{path.name}:{number}", record["text"], record["meta"]["pile_set_name"]))
    return out


def per_set(items):
    """{set: {documents, bytes}} of (id, text, set) items."""
    out = {}
    for _, text, name in items:
        entry = out.setdefault(name, {"documents": 0, "bytes": 0})
        entry["documents"] += 1
        entry["bytes"] += len(text.encode("utf-8"))
    return out


def read_parquet_folder(folder):
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]).to_pylist()


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("train-*"))}


@pytest.fixture(scope="module")
def published(nl_input, nl_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("nl")
    manifest = run_nl(nl_input, nl_tokenizer, out, "--num_shards", "3", "--seq_len", "512",
                      "--write_documents", "--write_rejects")
    return out, manifest


def test_outputs_and_manifest(published, nl_files, published_output_check):
    out, manifest = published
    published_output_check(out, manifest, num_shards=3)
    assert manifest["dataset"] == "nl"
    assert manifest["counts"]["tokenize"]["kept"] == manifest["totals"]["documents"]
    assert manifest["config"]["near_dedup"] is None and manifest["config"]["exact_dedup"] is True
    files = {f["name"]: f for f in manifest["inputs"]["files"]}
    lines = {}
    for doc_id, _, _ in records(nl_files):
        name = doc_id.split(":")[0]
        lines[name] = lines.get(name, 0) + 1
    assert {n: (f["status"], f["lines"], f["bytes"]) for n, f in files.items()} == {
        p.name: ("complete", lines[p.name], p.stat().st_size) for p in nl_files}
    assert manifest["inputs"]["totals"]["damaged"] == []
    assert not (out / "_run").exists()


def test_per_set_counts_match_a_direct_count_of_the_input_lines(published, nl_files):
    out, manifest = published
    direct = per_set(records(nl_files))
    assert {name: entry["read"] for name, entry in manifest["sets"].items()} == direct
    docs = read_parquet_folder(out / "documents")
    kept = per_set((d["id"], d["text"], d["subset"]) for d in docs)
    assert {name: entry["kept"] for name, entry in manifest["sets"].items()} == kept
    for entry in manifest["sets"].values():
        assert entry["rejected"]["documents"] == entry["read"]["documents"] - entry["kept"]["documents"]
    assert sum(e["kept"]["documents"] for e in manifest["sets"].values()) == manifest["totals"]["documents"]


def test_exact_dedup_removes_the_real_duplicates(published, nl_files):
    out, manifest = published
    by_text = {}
    for doc_id, text, _ in records(nl_files):
        by_text.setdefault(text, []).append(doc_id)
    expected = {i: min(ids) for ids in by_text.values() if len(ids) > 1 for i in ids if i != min(ids)}
    assert len(expected) == 8  # XQuAD paragraphs repeated once per question (samples/SOURCES.md)
    rejects = read_parquet_folder(out / "rejects")
    assert {r["id"]: r["detail"] for r in rejects if r["reason"] == "exact_duplicate"} == expected
    docs = read_parquet_folder(out / "documents")
    assert len({d["text"] for d in docs}) == len(docs) == len(by_text)
    wiki = manifest["sets"]["Wikipedia (en)"]["rejected_by_stage"]["exact_dedup"]
    assert wiki["documents"] == 8 == manifest["counts"]["exact_dedup"]["exact_duplicate"]


def test_every_document_is_packed_once(published, nl_tokenizer):
    out, manifest = published
    tokenizer = Tokenizer(nl_tokenizer.read_bytes())
    docs = read_parquet_folder(out / "documents")
    assert {d["subset"] for d in docs} <= set(PILE_SET_NAMES) and {d["language"] for d in docs} == {"text"}
    totals = manifest["totals"]
    assert sum(len(tokenizer.encode(d["text"])) for d in docs) == manifest["counts"]["tokenize"]["tokens"]
    assert totals["document_tokens"] == manifest["counts"]["tokenize"]["tokens"] + len(docs)  # + EOTs
    stream = np.concatenate([read_arrow_stream(out / f"train-{shard:05d}-of-00003.arrow")[0].reshape(-1)
                             for shard in range(3)])
    assert stream.size == totals["tokens"] == totals["document_tokens"] - totals["dropped_tail_tokens"]
    assert int(np.sum(stream == tokenizer.eot_id)) <= len(docs)


@pytest.mark.parametrize("argv, kept_sets", [
    (["--include_sets", "wikipedia (en),ArXiv"], {"Wikipedia (en)", "ArXiv"}),
    (["--exclude_sets", "DM Mathematics"], {"Wikipedia (en)", "ArXiv", "Pile-CC"}),
    (["--include_sets", "Wikipedia (en)", "--no-exact_dedup"], {"Wikipedia (en)"}),
])
def test_include_and_exclude_sets(nl_input, nl_tokenizer, nl_files, tmp_path, argv, kept_sets):
    manifest = run_nl(nl_input, nl_tokenizer, tmp_path / "o", "--num_shards", "2", "--write_documents", *argv)
    docs = read_parquet_folder(tmp_path / "o" / "documents")
    assert {d["subset"] for d in docs} == kept_sets
    direct = per_set(records(nl_files))
    for name, entry in manifest["sets"].items():
        assert entry["read"] == direct[name]
        if name not in kept_sets:
            assert entry["kept"]["documents"] == 0
            assert entry["rejected_by_stage"]["set_filter"] == direct[name]
    excluded = sum(direct[n]["documents"] for n in direct if n not in kept_sets)
    assert manifest["counts"]["set_filter"]["set_excluded"] == excluded
    dedup = "--no-exact_dedup" not in argv
    assert ("exact_dedup" in manifest["counts"]) == dedup
    if not dedup:
        assert manifest["sets"]["Wikipedia (en)"]["kept"] == direct["Wikipedia (en)"]  # duplicates kept


@pytest.mark.parametrize("argv, needles", [
    (["--include_sets", "Wikipedia,ArXiv"], ["--include_sets", "'Wikipedia'", *PILE_SET_NAMES]),
    (["--exclude_sets", "Books"], ["--exclude_sets", "'Books'", "Enron Emails"]),
    (["--include_sets", "ArXiv", "--exclude_sets", "arxiv"], ["ArXiv is in both"]),
    (["--input", "/nonexistent/*.jsonl.zst"], ["--input: no file matches"]),
    (["--on_damage", "ignore"], ["--on_damage"]),
])
def test_bad_flags_give_one_line(nl_input, nl_tokenizer, tmp_path, capsys, argv, needles):
    base = {"--input": nl_input, "--output": str(tmp_path / "o"), "--tokenizer": str(nl_tokenizer)}
    base.update(dict(zip(argv[::2], argv[1::2])))
    status = nl.run([x for kv in base.items() for x in kv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert all(needle in err[0] for needle in needles), err[0]
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_one_worker_and_two_processes_give_identical_shards(nl_input, nl_tokenizer, tmp_path):
    extra = ["--num_shards", "2", "--seq_len", "1024", "--near_dedup"]
    one = run_nl(nl_input, nl_tokenizer, tmp_path / "one", *extra)
    two = run_nl(nl_input, nl_tokenizer, tmp_path / "two", *extra, "--direct_running_mode=multi_processing",
                 "--direct_num_workers=2")
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert one["shards"] == two["shards"] and one["counts"] == two["counts"] and one["sets"] == two["sets"]
    assert one["near_dedup"]["connected_components"]["converged"]
    assert "near_dedup" in one["sets"]["ArXiv"]["rejected_by_stage"]


def damaged_inputs(tmp_path, nl_files):
    """A copy of the samples whose train/00.jsonl.zst was cut in half, and its complete lines."""
    folder = tmp_path / "pile"
    folder.mkdir()
    data = nl_files[0].read_bytes()
    (folder / nl_files[0].name).write_bytes(data[: len(data) // 2])
    for path in nl_files[1:]:
        (folder / path.name).write_bytes(path.read_bytes())
    partial = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data[: len(data) // 2])).read()
    return f"{folder}/*.jsonl.zst", partial.count(b"\n")


def test_a_damaged_file_fails_the_run_by_default(nl_files, nl_tokenizer, tmp_path, capsys):
    pattern, complete = damaged_inputs(tmp_path, nl_files)
    status = nl.run(["--input", pattern, "--output", str(tmp_path / "o"), "--tokenizer", str(nl_tokenizer)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert f"00.jsonl.zst: truncated zstd data (the file ends inside a frame), after {complete} complete" \
           " lines; nothing was published" in err[-1]
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_on_damage_continue_reports_the_file_and_keeps_what_was_read(nl_files, nl_tokenizer, tmp_path):
    pattern, complete = damaged_inputs(tmp_path, nl_files)
    manifest = run_nl(pattern, nl_tokenizer, tmp_path / "o", "--num_shards", "2", "--on_damage", "continue",
                      "--write_rejects")
    files = {f["name"]: f for f in manifest["inputs"]["files"]}
    assert files["00.jsonl.zst"]["status"] == "damaged" and files["00.jsonl.zst"]["lines"] == complete
    assert files["00.jsonl.zst"]["documents"] == complete
    assert manifest["inputs"]["totals"]["damaged"] == ["00.jsonl.zst"]
    assert manifest["counts"]["read"]["files_damaged"] == 1
    rejects = read_parquet_folder(tmp_path / "o" / "rejects")
    assert [r["detail"] for r in rejects if r["reason"] == "file_damaged"] == [
        f"truncated zstd data (the file ends inside a frame); {complete} lines read before it"]
    full = records(nl_files)
    read = [r for r in full if not r[0].startswith("00.jsonl.zst:") or int(r[0].split(":")[1]) < complete]
    assert {n: e["read"] for n, e in manifest["sets"].items()} == per_set(read)


def test_tokenizer_trained_with_source_nl(nl_tokenizer, nl_files):
    manifest = dv.read_manifest(str(nl_tokenizer.parent))
    assert manifest["config"]["source"] == "nl" and manifest["tokenizer"]["vocab_size"] == 2000
    assert manifest["sample"]["documents"] == manifest["counts"]["exact_dedup"]["kept"]
    assert [f["status"] for f in manifest["inputs"]["files"]] == ["complete"] * 3
    tokenizer = Tokenizer(nl_tokenizer.read_bytes())
    control = {tokens.PAD_ID, tokens.UNKNOWN_ID, tokens.END_OF_TEXT_ID}
    for doc_id, text, _ in records(nl_files):
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids).encode("utf-8") == text.encode("utf-8"), doc_id
        assert not control.intersection(ids), doc_id


def test_tokenizer_source_nl_takes_the_nl_read_flags(nl_input, tmp_path, capsys):
    from pipelines import tokenizer

    status = tokenizer.run(["--source", "nl", "--input", nl_input, "--output", str(tmp_path / "t"),
                            "--include_sets", "Books"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "--include_sets" in err[0]
