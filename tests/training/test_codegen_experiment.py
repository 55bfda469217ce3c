"""CodeGen's figures (training.experiments.codegen) on a real tiny checkpoint: per-problem HumanEval and
MTPB numbers that agree with the scored samples, standard errors by hand, perplexity against stock
CodeGen, the plots, and one-line refusals."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import collections
import json
import math
import xml.etree.ElementTree as ET

import torch

from schemas.benchmarks import humaneval_problems
from schemas.tokenizer import Tokenizer
from training.eval import passk, sandbox
from training.experiments import codegen

PROBLEMS, SAMPLES = 2, 2


@pytest.fixture(scope="module")
def checkpoint(nl_checkpoint):
    """A real nl-stage checkpoint (tests/training/conftest.py)."""
    return nl_checkpoint


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, checkpoint):
    out = tmp_path_factory.mktemp("codegen_exp")
    # as training.demo does: the tiny model's own completions run with the inner layers where bwrap cannot
    returned = codegen.run(str(out), str(checkpoint), problems=PROBLEMS, samples=SAMPLES, max_new_tokens=4,
                           device="cpu", unsafe_no_sandbox=sandbox.problem() is not None)
    return out, returned, json.loads((out / "results.json").read_text())


def lines(path):
    return [json.loads(line) for line in open(path)]


def hand_mean_and_se(values):
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def test_the_interface_dict(experiment):
    out, returned, _ = experiment
    assert set(returned) == {"name", "title", "summary", "tables", "figures", "results"}
    assert returned["name"] == "codegen" and returned["results"] == str(out / "results.json")
    assert "near chance" in returned["summary"] and "\n" not in returned["summary"]
    for table in returned["tables"]:
        assert table["caption"] and table["rows"]
        assert all(len(row) == len(table["columns"]) for row in table["rows"])
    per_problem = [t for t in returned["tables"] if t["caption"].startswith("MTPB per problem")][0]
    assert [row[0] for row in per_problem["rows"]] == ["1", "2"]


def test_humaneval_per_problem_pass_and_perplexity(experiment):
    out, _, results = experiment
    he = results["humaneval"]
    scored = lines(out / "humaneval.jsonl_results.jsonl")
    counts = collections.Counter(r["task_id"] for r in scored)
    passes = collections.Counter(r["task_id"] for r in scored if r["passed"])
    assert [p["task_id"] for p in he["problems"]] == ["HumanEval/0", "HumanEval/1"]
    for p in he["problems"]:
        assert p["samples"] == counts[p["task_id"]] == SAMPLES
        assert p["passed_samples"] == passes[p["task_id"]] and p["passed"] == (passes[p["task_id"]] > 0)
        assert p["pass@k"] == {str(k): passk.pass_at_k(SAMPLES, p["passed_samples"], k) for k in (1, 2)}
        assert math.isfinite(p["prompt_perplexity"]) and p["prompt_perplexity"] > 1
    assert set(he["pass@k"]) == {"pass@1", "pass@2"}
    assert he["pass@k"]["pass@1"] == pytest.approx(sum(p["pass@k"]["1"] for p in he["problems"]) / PROBLEMS)


def test_humaneval_perplexity_is_stock_codegens(experiment, checkpoint):
    """exp of the mean NLL of the prompt's tokens after end-of-text, as transformers' own loss computes it."""
    from transformers import CodeGenForCausalLM

    _, _, results = experiment
    model = CodeGenForCausalLM.from_pretrained(str(checkpoint)).eval()
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.model"))
    for p in results["humaneval"]["problems"]:
        ids = torch.tensor([[tokenizer.eot_id] + tokenizer.encode(humaneval_problems()[p["task_id"]]["prompt"])])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss
        assert p["prompt_perplexity"] == pytest.approx(math.exp(float(loss)), rel=1e-4)


def test_standard_errors_by_hand(experiment):
    _, _, results = experiment
    he = results["humaneval"]
    for group, want in (("pass", True), ("non_pass", False)):
        values = [p["prompt_perplexity"] for p in he["problems"] if p["passed"] == want]
        s = he["perplexity"][group]
        assert s["n"] == len(values)
        if len(values) >= 2:
            mean, se = hand_mean_and_se(values)
            assert s["mean"] == pytest.approx(mean) and s["stderr"] == pytest.approx(se) and se > 0
        elif values:  # one problem: its value, and no spread to estimate
            assert (s["mean"], s["stderr"]) == (values[0], 0.0)
        else:
            assert s["mean"] is None and s["stderr"] is None
    checked = 0
    for p in results["mtpb"]["problems"]:
        for mode in ("multi_turn", "single_turn"):
            values = p[mode]["perplexities"]
            assert len(values) == 5 * SAMPLES
            mean, se = hand_mean_and_se(values)
            assert p[mode]["perplexity"] == {"n": len(values), "mean": pytest.approx(mean), "stderr": pytest.approx(se)}
            checked += 1
    assert checked == 2 * PROBLEMS


def test_mtpb_per_problem_agrees_with_the_scored_samples(experiment):
    out, _, results = experiment
    mt = results["mtpb"]
    for mode, name in (("multi_turn", "multi"), ("single_turn", "single")):
        scored = lines(out / f"mtpb_{name}.jsonl_results.jsonl")
        assert len(scored) == PROBLEMS * 5 * SAMPLES
        assert all(len(r["turns"]) == 1 for r in scored) == (mode == "single_turn")
        for p in mt["problems"]:
            mine = [r for r in scored if str(r["id"]) == p["id"]]
            assert p[mode]["samples"] == len(mine) == 5 * SAMPLES
            assert p[mode]["pass_rate"] == sum(r["passed"] for r in mine) / len(mine)
        assert mt["modes"][mode]["pass_rate"] == sum(r["passed"] for r in scored) / len(scored)
        every = [v for p in mt["problems"] for v in p[mode]["perplexities"]]
        assert mt["modes"][mode]["perplexity"]["n"] == len(every) and all(math.isfinite(v) for v in every)
    # single-turn prompts do not depend on the completions: one perplexity per test case, repeated per sample
    single = mt["problems"][0]["single_turn"]["perplexities"]
    assert len(set(single)) <= 5
    assert [p["name"] for p in mt["problems"]] == ["Sandwich string", results["mtpb"]["problems"][1]["name"]]


def test_plots_are_pictures_and_svgs(experiment):
    out, returned, _ = experiment
    assert [f["png"] for f in returned["figures"]] == [str(out / f"{stem}.png") for stem in
                                                        ("humaneval_perplexity", "mtpb_perplexity")]
    for figure in returned["figures"]:
        png = open(figure["png"], "rb").read()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
        assert ET.parse(figure["svg"]).getroot().tag.endswith("svg")
        assert figure["caption"]


def test_command_line_refusals_are_one_line(checkpoint, tmp_path, capsys):
    assert codegen.cli(["--checkpoint", str(checkpoint), "--output", str(tmp_path), "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: samples must be >= 1, got 0"
    assert codegen.cli(["--checkpoint", str(tmp_path / "nope"), "--output", str(tmp_path / "o"),
                        "--unsafe_no_sandbox"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "not a Sluice checkpoint" in err[-1]
    assert not (tmp_path / "o").exists()
