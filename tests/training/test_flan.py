"""FLAN zero-shot scoring (training.eval.flan) on a real instruct split and real tiny checkpoints:
rank classification against stock CodeGen, the packed segment it mirrors, a model that always
answers "yes", the results and predictions files, --limit, determinism and one-line errors."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import json
import shutil

import numpy as np
import torch

from schemas import dataset_version as dv
from schemas import shard_batches
from schemas.instruct_eval import read_eval_records
from schemas.tokenizer import Tokenizer
from training import train
from training.eval import flan
from training.eval.generate import Generator
from training.lineage import lineage_chain
from training.step import segment_inputs

MAX_TARGET = 8


def _templates(forward: list, inverse: list) -> list:
    return [{"input": t, "target": "{answer}"} for t in forward] + [
        {"input": t, "target": "{question}", "inverse": True} for t in inverse]


FORWARD = ["{question}", "Q: {question}\nA:", "Question: {question}\nAnswer:", "Answer this: {question}",
           "{question}\nWhat do you say?", "Tell me: {question}", "Please answer. {question}",
           "Reply to this question: {question}"]
TRAIN_ONLY = ["Yes or no: {question}", "{question} (answer yes or no)"]  # all forward: every target "yes"
INVERSE = ["Ask something whose answer is {answer}.", "Write a question answered by {answer}."]


@pytest.fixture(scope="module")
def flan_split(tmp_path_factory, sample_tokenizer):
    """A one-holdout instruct version built by pipelines.instruct from a registry written here: the
    training cluster (nli) answers every question "yes"; the held-out cluster (sentiment) has a task
    whose answers are all "yes", one whose answers are all "no" (both rank classification over
    yes/no) and an exact_match task whose first examples answer "yes" (with a second reference)."""
    import yaml

    from pipelines import instruct

    root = tmp_path_factory.mktemp("flan")
    sources = root / "sources"
    sources.mkdir()
    subjects = ["the sky", "a river", "the moon", "a song", "the sea", "a garden", "the city", "a book"]

    def write(name, rows):
        (sources / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(sources / name)

    train_rows = [{"q": f"Is {s} number {i} real?", "a": "yes"} for i in range(12) for s in subjects]
    yes_rows = [{"q": f"Does {s} feel calm?", "a": "yes"} for s in subjects[:6]]
    no_rows = [{"q": f"Was {s} sad today?", "a": "no"} for s in subjects[:6]]
    qa_rows = [{"q": f"Shall we see {s}?", "answers": ["yes", "yes indeed"] if i < 3 else ["no", "never"]}
               for i, s in enumerate(subjects[:6])]
    options = ["yes", "no"]
    tasks = [
        {"name": "affirm", "cluster": "nli", "metric": "accuracy", "options": options,
         "source": {"format": "jsonl", "splits": {"train": write("affirm.jsonl", train_rows)}},
         "fields": {"question": "q", "answer": "a"}, "templates": _templates(FORWARD + TRAIN_ONLY, [])},
        {"name": "all_yes", "cluster": "sentiment", "metric": "accuracy", "options": options,
         "source": {"format": "jsonl", "splits": {"eval": write("yes.jsonl", yes_rows)}},
         "fields": {"question": "q", "answer": "a"}, "templates": _templates(FORWARD, INVERSE)},
        {"name": "all_no", "cluster": "sentiment", "metric": "accuracy", "options": options,
         "source": {"format": "jsonl", "splits": {"eval": write("no.jsonl", no_rows)}},
         "fields": {"question": "q", "answer": "a"}, "templates": _templates(FORWARD, INVERSE)},
        {"name": "say_yes", "cluster": "sentiment", "metric": ["exact_match", "f1"], "references": "answers.*",
         "source": {"format": "jsonl", "splits": {"eval": write("qa.jsonl", qa_rows)}},
         "fields": {"question": "q", "answer": "answers.0"}, "templates": _templates(FORWARD, INVERSE)},
    ]
    registry = root / "tasks.yaml"
    registry.write_text(yaml.safe_dump({"tasks": tasks}))
    out = root / "instruct" / "v1"
    instruct.main(["--tasks", str(registry), "--output", str(out), "--tokenizer", str(sample_tokenizer),
                   "--holdout_cluster", "sentiment", "--num_shards", "1", "--no-decontaminate", "--seq_len", "128",
                   "--max_input_tokens", "96", "--max_target_tokens", str(MAX_TARGET)])
    return out


@pytest.fixture(scope="module")
def parent(nl_checkpoint):
    """A real nl-stage checkpoint with the split's tokenizer: the instruct stage's parent."""
    return nl_checkpoint


@pytest.fixture(scope="module")
def yes_model(tmp_path_factory, flan_split, parent, tiny_config):
    """The parent instruction-tuned on the split (every training answer is "yes") until it answers "yes"."""
    root = tmp_path_factory.mktemp("flan_yes")
    config = json.loads(tiny_config.read_text())
    config["train"].update(lr=0.01, max_steps=40, checkpoint_every=40, log_every=10)  # one answer: learnt fast
    (root / "config.json").write_text(json.dumps(config))
    out = root / "instruct"
    train.main(["--stage", "instruct", "--data", str(flan_split), "--init", str(parent), "--output", str(out),
                "--config", str(root / "config.json")])
    return out


def run_flan(tmp_path, checkpoint, data, *extra, name="results"):
    results = tmp_path / f"{name}.json"
    predictions = tmp_path / f"{name}.jsonl"
    argv = ["--checkpoint", str(checkpoint), "--data", str(data), "--output", str(results),
            "--predictions", str(predictions), "--device", "cpu", *extra]
    flan.main(argv)
    return json.loads(results.read_text()), [json.loads(line) for line in predictions.read_text().splitlines()]


def test_option_scores_are_stock_codegen_log_probabilities(parent, flan_split, tmp_path):
    from transformers import CodeGenForCausalLM

    _, rows = run_flan(tmp_path, parent, flan_split, "--limit", "2", "--batch_size", "3")
    records = {(r.id, r.template): r for r in read_eval_records(str(flan_split))}
    tok = Tokenizer.from_file(str(parent / "tokenizer.model"))
    stock = CodeGenForCausalLM.from_pretrained(str(parent), dtype=torch.float32).eval()
    ranked = [row for row in rows if row["metric"] == "accuracy"]
    assert ranked and len(ranked) == 2 * 2 * 8  # two tasks, two examples, eight forward templates
    for row in ranked:
        record = records[(row["id"], row["template"])]
        assert list(row["option_scores"]) == ["yes", "no"] == list(record.options)
        for option, got in row["option_scores"].items():
            continuation = tok.encode(option)[:MAX_TARGET] + [tok.eot_id]
            ids = torch.tensor([list(record.input_ids) + continuation])
            with torch.no_grad():
                logp = torch.log_softmax(stock(ids).logits[0].double(), dim=-1)
            start = len(record.input_ids)
            want = sum(float(logp[start - 1 + j, t]) for j, t in enumerate(continuation))
            assert got == pytest.approx(want, abs=1e-4)
        best = max(record.options, key=lambda o: row["option_scores"][o])
        assert row["prediction"] == best


def test_scoring_sees_an_example_as_its_packed_segment(parent, flan_split):
    """The target + end-of-text log-probability of a packed training example, computed in its row
    with the trainer's segment mask and positions, is what continuation_logprobs gives for the
    example alone: the scorer presents an input exactly as the streams do."""
    manifest = dv.read_stream_manifest(str(flan_split))
    shard = next(s for s in dv.shard_files(manifest, "arrow") if s["records"])
    batch = next(shard_batches.iter_batches(dv.member_path(str(flan_split), shard["path"]), "arrow"))
    row = next(i for i in range(len(batch["segment_ids"])) if np.asarray(batch["segment_ids"][i]).max() >= 3)
    ids = torch.tensor(np.asarray(batch["input_ids"][row]), dtype=torch.long)[None]
    segments = torch.tensor(np.asarray(batch["segment_ids"][row]), dtype=torch.long)[None]
    mask = np.asarray(batch["loss_mask"][row])
    gen = Generator(str(parent), "cpu")
    position_ids, attention = segment_inputs(segments)
    with torch.no_grad():
        logits = gen.model(input_ids=ids, position_ids=position_ids, attention_mask=attention).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    for segment in (2, 3):
        where = np.flatnonzero(segments[0].numpy() == segment)
        target = [int(p) for p in where if mask[p]]
        in_row = sum(float(logp[p - 1, ids[0, p]]) for p in target)
        context = ids[0, where[0]:target[0]].tolist()
        ((alone, n),) = gen.continuation_logprobs([(context, ids[0, target[0]:target[-1] + 1].tolist())])
        assert n == len(target) and alone == pytest.approx(in_row, abs=1e-4)


def test_a_model_that_answers_yes_scores_one_and_zero(yes_model, flan_split, tmp_path):
    results, rows = run_flan(tmp_path, yes_model, flan_split)
    tasks = results["tasks"]
    assert tasks["all_yes"]["mean"] == tasks["all_yes"]["best"] == 1.0
    assert tasks["all_no"]["mean"] == tasks["all_no"]["best"] == 0.0
    assert set(tasks["all_yes"]["templates"].values()) == {1.0}
    assert all(row["prediction"] == "yes" for row in rows if row["metric"] == "accuracy")
    # Generation (say_yes has no OPTIONS lines, unlike anything trained on): greedy decoding stops at
    # end-of-text, mostly after "yes"; each prediction is scored against both references.
    generated = [row for row in rows if row["task"] == "say_yes"]
    assert sum(row["prediction"] == "yes" for row in generated) > len(generated) / 2
    for row in generated:
        says_yes = row["prediction"] == "yes" and "yes" in row["references"]
        assert row["scores"]["exact_match"] == row["score"] == float(says_yes)
    by_template = {}
    for row in generated:
        by_template.setdefault(str(row["template"]), []).append(row["score"])
    assert tasks["say_yes"]["metric"] == "exact_match"
    assert tasks["say_yes"]["templates"] == {t: pytest.approx(sum(v) / len(v)) for t, v in by_template.items()}
    assert tasks["say_yes"]["best"] == pytest.approx(0.5)  # the three "no" examples score 0 under any template
    assert results["clusters"] == {"sentiment": pytest.approx((1.0 + 0.0 + tasks["say_yes"]["mean"]) / 3)}


def test_greedy_batches_agree_with_one_prompt_at_a_time(yes_model, flan_split):
    gen = Generator(str(yes_model), "cpu")
    prompts = [r.input_ids for r in read_eval_records(str(flan_split))][:7]
    assert len({len(p) for p in prompts}) > 1  # padding is exercised
    assert gen.greedy(prompts, MAX_TARGET, batch_size=4) == [gen.greedy([p], MAX_TARGET)[0] for p in prompts]


def test_results_predictions_limit_and_determinism(parent, flan_split, tmp_path, capsys):
    manifest = dv.read_manifest(str(flan_split))
    results, rows = run_flan(tmp_path, parent, flan_split, "--limit", "3", "--batch_size", "5", name="a")
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == flan.summary(results)
    again, _ = run_flan(tmp_path, parent, flan_split, "--limit", "3", "--batch_size", "5", name="b")
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()

    templates = manifest["eval"]["templates"]
    assert sorted(results["tasks"]) == ["all_no", "all_yes", "say_yes"]
    for task, entry in results["tasks"].items():
        assert set(entry) >= {"metric", "templates", "mean", "best", "examples"}
        assert entry["examples"] == 3 and entry["metric"] == manifest["eval"]["metrics"][task][0]
        assert sorted(map(int, entry["templates"])) == templates[task] == list(range(8))
        values = list(entry["templates"].values())
        assert entry["mean"] == pytest.approx(sum(values) / len(values)) and entry["best"] == max(values)
    assert results["clusters"]["sentiment"] == pytest.approx(
        sum(t["mean"] for t in results["tasks"].values()) / 3)
    assert results["lineage"] == lineage_chain(str(parent))

    all_ids = {}
    for record in read_eval_records(str(flan_split)):
        all_ids.setdefault(record.task, set()).add(record.id)
    assert len(rows) == 3 * 3 * 8
    assert [(r["task"], r["id"], r["template"]) for r in rows] == sorted((r["task"], r["id"], r["template"]) for r in rows)
    for task, ids in all_ids.items():
        assert {r["id"] for r in rows if r["task"] == task} == set(sorted(ids)[:3])
    for row in rows:
        assert set(row) >= {"task", "cluster", "id", "template", "metric", "prediction", "references", "score"}
        assert row["cluster"] == "sentiment" and row["references"]
        assert ("option_scores" in row) == (row["metric"] == "accuracy")
    say = [r for r in rows if r["task"] == "say_yes"]
    assert all(len(r["references"]) == 2 for r in say)
    # A template's score is the mean of its examples' scores.
    first = [r["score"] for r in rows if r["task"] == "all_yes" and r["template"] == 0]
    assert results["tasks"]["all_yes"]["templates"]["0"] == pytest.approx(sum(first) / len(first))


def one_line_error(*argv) -> str:
    """The command's error for ``argv`` (run as ``python -m training.eval.flan`` runs it): exit status 2
    and one line on stderr."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert flan.run([str(a) for a in argv]) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    return lines[0]


def test_one_line_errors(parent, flan_split, tmp_path):
    out = tmp_path / "r.json"
    common = ["--checkpoint", parent, "--output", out, "--device", "cpu"]
    assert "not an instruct split" in one_line_error(*common, "--data", parent.parent / "nl" / "v1")
    assert "manifest" in one_line_error(*common, "--data", tmp_path / "nowhere")
    assert "--limit" in one_line_error(*common, "--data", flan_split, "--limit", "0")

    other = tmp_path / "other"
    shutil.copytree(parent, other)
    with open(other / "tokenizer.model", "ab") as handle:
        handle.write(b"\0")
    assert "another tokenizer" in one_line_error("--checkpoint", other, "--data", flan_split, "--output", out)

    damaged = tmp_path / "damaged"
    shutil.copytree(flan_split, damaged)
    (eval_file,) = (damaged / "eval").glob("eval-*.tfrecord")
    eval_file.write_bytes(eval_file.read_bytes()[:-10])
    assert "sha256" in one_line_error(*common, "--data", damaged)
    assert not out.exists()


def test_an_unknown_metric_is_one_line(parent, flan_split, tmp_path):
    """An evaluation file whose records name a metric this scorer does not know (a newer registry's,
    say), its manifest entry matching it, is refused before any scoring."""
    import dataclasses
    import hashlib

    from schemas.instruct_eval import encode_eval_record
    from schemas.tfrecord import write_record

    copy = tmp_path / "split"
    shutil.copytree(flan_split, copy)
    (eval_file,) = (copy / "eval").glob("eval-*.tfrecord")
    records = list(read_eval_records(str(eval_file)))
    with open(eval_file, "wb") as handle:
        for record in records:
            bad = record.task == "say_yes"
            write_record(handle, encode_eval_record(dataclasses.replace(record, metrics=("chrf",)) if bad else record))
    manifest = json.loads((copy / "manifest.json").read_text())
    data = eval_file.read_bytes()
    manifest["eval"]["files"][0].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (copy / "manifest.json").write_text(json.dumps(manifest))
    line = one_line_error("--checkpoint", parent, "--data", copy, "--output", tmp_path / "r.json", "--device", "cpu")
    assert "unknown metric 'chrf'" in line
