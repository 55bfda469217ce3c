"""The one-command CPU run (``python -m training.demo``, ``make train-demo``) on pipeline output,
and the properties of generation and perplexity on the tiny model it trains."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import json
import math


from schemas import dataset_version as dv


from schemas import version_writer
from schemas.benchmarks import mtpb_problems
from training import demo
from training.eval import humaneval, mtpb
from training.eval.generate import Generator


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, corpus_streams, instruct_version, sample_tokenizer):
    out = tmp_path_factory.mktemp("demo") / "train"
    summary = demo.main(["--data", str(corpus_streams["nl"].parents[1]), "--version", "v1", "--output", str(out),
                         "--problems", "1", "--n", "2", "--max_new_tokens", "8", "--tokenizer", str(sample_tokenizer)])
    return out, summary


def lines(path):
    return [json.loads(line) for line in open(path)]


def test_demo_trains_four_stages_and_evaluates(demo_run, sample_tokenizer):
    out, summary = demo_run
    tokenizer = dv.read_manifest(str(sample_tokenizer.parent))["version"]["name"]
    # instruct trains on the first split the --all_holdouts index lists, from the mono checkpoint
    assert [(e["stage"], e["data"], e["tokenizer"]) for e in summary["lineage"]] == [
        ("nl", "nl/v1", f"tokenizer/{tokenizer}"), ("multi", "multi/v1", f"tokenizer/{tokenizer}"),
        ("mono", "mono/v1", f"tokenizer/{tokenizer}"),
        ("instruct", "instruct/v1/holdout-closed_book_qa", f"tokenizer/{tokenizer}")]
    assert set(summary["humaneval"]) == {"pass@1", "pass@2"}
    he = lines(out / "humaneval.jsonl_results.jsonl")
    assert len(he) == 2 and all(r["task_id"] == "HumanEval/0" and "passed" in r for r in he)
    multi = lines(out / "mtpb_multi.jsonl_results.jsonl")
    assert [r["case"] for r in multi] == [0, 1, 2, 3, 4] and all(len(r["turns"]) == 5 for r in multi)
    single = lines(out / "mtpb_single.jsonl_results.jsonl")
    assert len(single) == 5 and all(len(r["turns"]) == 1 for r in single)
    table = summary["perplexity"]
    for mode in ("multi_turn", "single_turn"):
        groups = table[mode]
        assert groups["passed"]["n"] + groups["not_passed"]["n"] == 5


def test_generation_is_seeded_and_truncated(demo_run, tmp_path):
    out, _ = demo_run
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        humaneval.generate(str(out / "instruct"), 2, str(path), limit=2, max_new_tokens=8, device="cpu")
    assert a.read_text() == b.read_text()
    assert all(humaneval.truncate(r["completion"]) == r["completion"] for r in lines(a))


def test_prompt_perplexity_is_finite_and_deterministic(demo_run):
    out, _ = demo_run
    prompt = mtpb.comment(mtpb.turn_prompts(mtpb_problems()["1"], 0)[0])
    values = []
    for _ in range(2):
        nll, count = Generator(str(out / "instruct"), "cpu").token_nll(mtpb.PREFIX, prompt)
        values.append(math.exp(nll / count))
    assert count > 5 and math.isfinite(values[0]) and values[0] == values[1]
    # a random-ish tiny model: perplexity near the vocabulary size, far from 1
    assert 10 < values[0] < 10 * 4000


def test_an_unknown_instruct_split_is_one_line(corpus_streams, instruct_version, tmp_path, capsys):
    argv = ["--data", str(corpus_streams["nl"].parents[1]), "--version", "v1", "--output", str(tmp_path / "t"),
            "--instruct_split", "holdout-nope"]
    assert demo.run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --instruct_split:") and "holdout-sentiment" in err and "\n" not in err
    assert demo.run(argv[:2] + ["--version", "v9"] + argv[4:6]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_an_instruct_split_linked_outside_the_version_is_one_line(tmp_path):
    """The split folder to train on comes from the index manifest: a link out of the version is refused."""
    import numpy as np

    from training.cli import UsageError

    folder = tmp_path / "instruct" / "v1"
    version_writer.write_index(folder, {"holdout-a": [{"input_ids": np.zeros((2, 4), dtype=np.int32)}]})
    assert demo.instruct_data(str(folder), None) == f"{folder}/holdout-a"
    (folder / "holdout-a").rename(tmp_path / "holdout-a")
    (folder / "holdout-a").symlink_to(tmp_path / "holdout-a")
    with pytest.raises(UsageError, match="'holdout-a' leads outside the version folder"):
        demo.instruct_data(str(folder), "holdout-a")
