"""Benchmark n-gram matching: normalisation and hashing, the index of the real HumanEval and MTPB
data, real HumanEval solutions planted in real files of the sample repositories, and no false
positive on the sample corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.benchmarks import mtpb_problems
from transforms.decontamination import (
    DEFAULT_MIN_COVERAGE, DEFAULT_NGRAM, MIN_ITEM_TOKENS, load_benchmarks, load_humaneval, tokens,
)
from transforms.decontamination_matcher import (
    build_index, coverage, find_contamination, item_order, text_ngram_hashes,
)

ROOT = Path(__file__).resolve().parents[2]


def index_of(items, min_coverage: float = DEFAULT_MIN_COVERAGE):
    """The index as the pipelines build it (their n-gram length and shortest item)."""
    return build_index(items, DEFAULT_NGRAM, min_coverage, MIN_ITEM_TOKENS)


@pytest.fixture(scope="module")
def humaneval() -> dict[str, str]:
    return dict(load_humaneval())


@pytest.fixture(scope="module")
def index():
    return index_of(load_benchmarks())


# ---------------------------------------------------------------------------------------------
# Normalisation, hashing, index
# ---------------------------------------------------------------------------------------------


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


def test_hashes_are_the_same_in_every_process(sample_python_files):
    code = ("import numpy as np\nfrom transforms.decontamination_matcher import text_ngram_hashes\n"
            "print(text_ngram_hashes(open(0).read(), 13).tolist())")
    text = sample_python_files["toolz-0.12.1.tar.gz:toolz/itertoolz.py"]
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
        index = index_of(items)
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


def test_short_items_are_one_gram_or_skipped(sample_python_files, plant):
    real = sample_python_files["toolz-0.12.1.tar.gz:toolz/itertoolz.py"]
    # 9 tokens: below 13, at least 8, so the whole item is one 9-gram. 3 tokens: skipped.
    short = "def interleave_twice(first, second): return merge_sorted(first, second, key)"
    assert len(tokens(short)) == 9
    index = index_of([("x/short", short), ("x/tiny", "return a + b")])
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
                                                           sample_python_files, plant):
    real = sample_python_files["toolz-0.12.1.tar.gz:toolz/itertoolz.py"]
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
def test_reformatted_planted_solution_is_still_caught(change, humaneval, index, sample_python_files,
                                                       plant):
    real = sample_python_files["itsdangerous-2.2.0.tar.gz:src/itsdangerous/signer.py"]
    for item in ("HumanEval/0", "HumanEval/23", "HumanEval/100"):
        changed = change(humaneval[item])
        assert changed != humaneval[item]
        assert find_contamination(plant(real, changed), index) == item


def test_planted_mtpb_problem_is_found_filled_in_or_as_template(index, sample_python_files, plant):
    problem = mtpb_problems()["1"]
    real = sample_python_files["toolz-0.12.1.tar.gz:toolz/dicttoolz.py"]
    filled = "\n".join("# " + turn.format(**problem["inputs"][1]) for turn in problem["prompts"])
    assert "abcdecadeCADE" in filled
    template = "\n".join("# " + turn for turn in problem["prompts"])
    for snippet in (filled, template):
        assert find_contamination(plant(real, snippet), index) == "MTPB/1"


def test_no_false_positive_on_the_sample_corpus(index, sample_python_files):
    flagged = {name: item for name, text in sample_python_files.items()
               if (item := find_contamination(text, index)) is not None}
    assert flagged == {}
    # Only two files share any 13-gram with a benchmark, both low-information enumerations: an
    # A..Z list in pyparsing's tests vs MTPB/18's Morse table, number words "zero" .. "nine" vs
    # HumanEval/19. Each covers a small part of its item, far below the 50% a copy needs; a rule
    # flagging any single shared 13-gram would have removed both files.
    touched = {(name, item): share for name, text in sample_python_files.items()
               for item, share in coverage(text, index).items()}
    assert set(touched) == {("pyparsing-3.1.2.tar.gz:tests/test_unit.py", "MTPB/18"),
                            ("pyparsing-3.1.2.tar.gz:examples/wordsToNum.py", "HumanEval/19")}
    assert max(touched.values()) < 0.2
    loose = index_of(load_benchmarks(), min_coverage=0.01)
    assert {name for name, text in sample_python_files.items()
            if find_contamination(text, loose)} == {name for name, _ in touched}
