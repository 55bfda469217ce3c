"""The task registry: the shipped registry's tasks and templates; bad registries fail in one line;
field mappings read records; held-out splits. (Rendering, reading sources and mixing are tested
beside the transforms: tests/transforms/instruct/.)"""

from __future__ import annotations

import copy
import dataclasses

import pytest

from schemas import instruct as schema
from schemas.instruct_parse import _parse_field, load_registry


def test_shipped_registry_covers_flan_clusters(instruct_registry):
    registry = instruct_registry
    real = [t for t in registry.tasks if t.source.format != "mono"]
    code = [t for t in registry.tasks if t.cluster == "code"]
    assert len(real) >= 10 and len({t.cluster for t in real}) >= 5
    assert {t.name for t in code} == {"code_docstring_to_function", "code_function_to_docstring"}
    trainable = {t.name for t in registry.tasks if t.trainable}
    # SOURCES.md lists these as standard evaluation splits: never in a training mixture.
    for name in ("xquad_en", "nq_open", "piqa", "cosmos_qa", "e_snli", "e2e_nlg", "dart", "ntrex128_en_de",
                 "wsc", "sts2016_postediting", "aqua_rat"):
        assert name not in trainable
        assert list(registry.task(name).source.splits) == ["eval"]
    assert registry.task("gsm8k").source.splits["eval"].endswith("gsm8k/test.jsonl")
    for task in registry.tasks:
        assert len(task.templates) == 10
        assert sum(t.inverse for t in task.templates) <= 3


def test_inverse_templates_swap_the_roles_of_fields(instruct_registry):
    swapped = 0
    for task in instruct_registry.tasks:
        def keys(names):  # the source data a field comes from (e_snli's relation and answer: label)
            return set().union(*(task.fields[n].top_keys() for n in names))

        forward = [t.fields() for t in task.templates if not t.inverse]
        forward_inputs = keys(set().union(*(i for i, _ in forward)))
        forward_targets = keys(set().union(*(t for _, t in forward)))
        for template in task.templates:
            if not template.inverse:
                continue
            inputs, targets = (keys(f) for f in template.fields())
            # What the task asks for becomes given, and what it gives becomes the answer.
            assert inputs & forward_targets, (task.name, template)
            assert targets <= forward_inputs, (task.name, template)
            assert not targets & forward_targets, (task.name, template)
            swapped += 1
    assert swapped >= 20


def test_field_mapping_forms():
    spec = _parse_field("a", {"path": "xs", "join": "; ", "inner_join": " | "}, "w")
    assert schema.field_value({"xs": [["s", "p", "o"], ["s2", "p2", 1]]}, spec) == "s | p | o; s2 | p2 | 1"
    spec = _parse_field("a", {"path": "label", "map": {-1: "negative", True: "yes"}}, "w")
    assert schema.field_value({"label": -1}, spec) == "negative"
    assert schema.field_value({"label": True}, spec) == "yes"
    with pytest.raises(schema.FieldError) as err:
        schema.field_value({"label": 5}, spec)
    assert err.value.reason == "unmapped_value"
    spec = _parse_field("a", {"choices": "opts", "index": "c", "index_map": {"A": 0, "B": 1}}, "w")
    assert schema.field_value({"opts": ["x", "y"], "c": "B"}, spec) == "y"
    spec = _parse_field("a", {"choices": ["s1", "s2"], "index": "label"}, "w")
    assert schema.field_value({"s1": "x", "s2": "y", "label": "1"}, spec) == "y"
    with pytest.raises(schema.FieldError) as err:
        schema.field_value({"s1": "x", "s2": "y", "label": 2}, spec)
    assert err.value.reason == "bad_index"
    spec = _parse_field("a", "answers.0.text", "w")
    assert schema.field_value({"answers": [{"text": "Denver"}]}, spec) == "Denver"
    with pytest.raises(schema.FieldError) as err:
        schema.field_value({"answers": []}, spec)
    assert err.value.reason == "missing_field"


def test_metrics_and_references_of_the_shipped_registry(instruct_registry):
    registry = instruct_registry
    for task in registry.tasks:  # every evaluated task names known metrics; accuracy only with options
        assert task.metrics and set(task.metrics) <= set(schema.METRICS), task.name
        assert ("accuracy" in task.metrics) <= task.has_options
    assert registry.task("xquad_en").metrics == ("exact_match", "f1")
    assert registry.task("ntrex128_en_de").metrics == ("bleu",)
    assert {registry.task(t).metrics for t in ("scitldr", "dart", "e2e_nlg")} == {("rouge_l",)}
    assert registry.task("xquad_en").references == ("answers", "*", "text")
    assert registry.task("e_snli").forward_templates == (0, 1, 2, 3, 4, 5, 6)
    assert registry.task("e_snli").answer_field == "answer"


def test_reference_values_expand_wildcards():
    record = {"answers": [{"text": "Denver Broncos"}, {"text": "Broncos"}], "answer": ["1972", 1972],
              "nested": [["a", "b"], ["c"]], "empty": []}
    assert schema.reference_values(record, ("answers", "*", "text")) == ["Denver Broncos", "Broncos"]
    assert schema.reference_values(record, ("answer", "*")) == ["1972", "1972"]
    assert schema.reference_values(record, ("answer",)) == ["1972", "1972"]  # a list at the end: each element
    assert schema.reference_values(record, ("nested", "*")) == ["a", "b", "c"]
    assert schema.reference_values(record, ("answers", 1, "text")) == ["Broncos"]
    for path, reason in ((("empty", "*"), "missing_field"), (("missing",), "missing_field"),
                         (("answers",), "not_text"), (("answers", "*", "start"), "missing_field")):
        with pytest.raises(schema.FieldError) as err:
            schema.reference_values(record, path)
        assert err.value.reason == reason, path


# ------------------------------------------------------------------------------- bad registries
# (a source that lacks a mapped field or matches no file: tests/transforms/instruct/test_task_sources.py)


def test_tiny_registry_loads(tiny_registry, write_registry):
    registry = load_registry(write_registry(tiny_registry))
    assert registry.task("qa").trainable and not registry.task("qa").has_eval


@pytest.mark.parametrize("change, message", [
    (lambda d: d["tasks"][0]["templates"][3].update(input="Q: {question} {context}"),
     "task qa: template 3 names context, not a mapped field"),
    (lambda d: d["tasks"][0]["templates"].pop(), "task qa: needs 10 templates, has 9"),
    (lambda d: [t.update(inverse=True) for t in d["tasks"][0]["templates"][:4]], "4 inverse templates, at most 3"),
    (lambda d: d["tasks"][0]["source"].update(format="csv"), "source format 'csv' is not one of"),
    (lambda d: d["tasks"][0].update(options={"field": "choices"}), "options field 'choices' is not a mapped field"),
    (lambda d: d["tasks"][0]["templates"][0].update(target="{answer!r}"), "must be a plain {field_name}"),
    (lambda d: d["tasks"].append(copy.deepcopy(d["tasks"][0])), "task names occur twice: qa"),
    (lambda d: d.update(close_clusters={"closed_book_qa": ["nli"]}), "close_clusters names clusters no task has"),
    (lambda d: d["tasks"][0].update(metric="blue"),
     r"task qa: unknown metric 'blue' \(known: accuracy, exact_match, f1, bleu, rouge_l\)"),
    (lambda d: d["tasks"][0].update(metric=["f1", "f1"]), "names a metric twice"),
    (lambda d: d["tasks"][0].update(metric={"name": "f1"}), "'metric' must be a name or a list of names"),
    (lambda d: d["tasks"][0].update(metric="accuracy"), "metric 'accuracy' ranks the task's options, and the task"),
    (lambda d: d["tasks"][0]["source"]["splits"].update(eval=d["tasks"][0]["source"]["splits"]["train"]),
     "task qa: an evaluated task needs 'metric'"),
    (lambda d: d["tasks"][0].update(references="answers.x*"), "'[*]' must be a whole path part"),
    (lambda d: (d["tasks"][0].update(references="a.*"), d["tasks"][0]["templates"][4].update(target="{question}")),
     "'references' replace the answer in the forward targets, which must all fill one and the same field"),
])
def test_bad_registry_fails_with_one_clear_line(tiny_registry, write_registry, change, message):
    change(tiny_registry)
    with pytest.raises(schema.RegistryError, match=message) as err:
        load_registry(write_registry(tiny_registry))
    assert "\n" not in str(err.value) and str(err.value).startswith("registry ")


def test_unparsable_registry(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks: [unclosed\n")
    with pytest.raises(schema.RegistryError, match="not YAML/JSON"):
        load_registry(str(path))


# ------------------------------------------------------------------------------- held-out splits


def test_holdout_splits(instruct_registry):
    registry = instruct_registry
    split, = schema.plan_splits(registry, "commonsense")
    assert split.excluded_clusters == ("commonsense", "reading_comprehension_with_commonsense")
    clusters = {registry.task(t).cluster for t in split.train_tasks}
    assert not clusters & set(split.excluded_clusters)
    assert set(split.eval_tasks) == {"codah", "strategyqa", "piqa"}
    splits = schema.plan_splits(registry, all_holdouts=True)
    assert [s.holdout for s in splits] == registry.clusters
    for s in splits:
        assert s.eval_tasks and all(registry.task(t).cluster == s.holdout for t in s.eval_tasks)
        assert all(registry.task(t).cluster not in s.excluded_clusters for t in s.train_tasks)
    everything, = schema.plan_splits(registry)
    assert everything.name == "all" and not everything.eval_tasks
    with pytest.raises(schema.RegistryError, match="no task's cluster"):
        schema.plan_splits(registry, "poetry")


def test_several_clusters_held_out_together(instruct_registry):
    """FLAN's cluster ablation holds out NLI, closed-book QA and commonsense at once: each with its
    close clusters out of training, the tasks of the named clusters evaluated; one cluster named
    as a one-element list is the --holdout_cluster split."""
    registry = instruct_registry
    split, = schema.plan_splits(registry, ("nli", "commonsense", "closed_book_qa"))
    assert split.name == "holdout-closed_book_qa+commonsense+nli" and split.holdout is None
    assert split.holdouts == ("closed_book_qa", "commonsense", "nli")
    assert split.excluded_clusters == ("closed_book_qa", "commonsense", "nli",
                                       "reading_comprehension_with_commonsense")
    assert split.eval_tasks == ("e_snli", "web_questions", "nq_open", "codah", "strategyqa", "piqa")
    assert split.train_tasks == tuple(t.name for t in registry.tasks if t.trainable and t.cluster not in
                                      split.excluded_clusters)
    assert schema.plan_splits(registry, ("commonsense",)) == schema.plan_splits(registry, "commonsense")
    with pytest.raises(schema.RegistryError, match="'poetry' is no task's cluster"):
        schema.plan_splits(registry, ("nli", "poetry"))
    with pytest.raises(schema.RegistryError, match="nli named more than once"):
        schema.plan_splits(registry, ("nli", "commonsense", "nli"))


def test_cluster_ladder_adds_the_clusters_with_most_tasks_first(instruct_registry):
    registry = instruct_registry
    ladder = schema.plan_splits(registry, ("nli", "commonsense", "closed_book_qa"), cluster_ladder=True)
    # code has two trainable tasks; the others one each, in the order they first appear in the registry
    order = ("code", "sentiment", "coreference", "summarization", "misc")
    assert [s.name for s in ladder] == [f"clusters-{k}" for k in range(1, 6)]
    assert schema.ladder_order(registry, ladder[0].excluded_clusters) == order
    for k, split in enumerate(ladder, start=1):
        assert split.k == k and split.train_clusters == order[:k]
        assert split.holdouts == ladder[0].holdouts and split.excluded_clusters == ladder[0].excluded_clusters
        assert split.eval_tasks == ladder[0].eval_tasks
        assert split.train_tasks == tuple(t.name for t in registry.tasks if t.trainable and t.cluster in order[:k])
        if k > 1:  # nested: each rung adds exactly its cluster's trainable tasks
            added = set(split.train_tasks) - set(ladder[k - 2].train_tasks)
            assert set(ladder[k - 2].train_tasks) < set(split.train_tasks)
            assert added == {t.name for t in registry.tasks if t.trainable and t.cluster == order[k - 1]}
    assert set(ladder[-1].train_tasks) == set(schema.plan_splits(registry, ladder[0].holdouts)[0].train_tasks)
    # The order is the registry's: reversed, the tied clusters come the other way round.
    reversed_registry = dataclasses.replace(registry, tasks=tuple(reversed(registry.tasks)))
    assert schema.ladder_order(reversed_registry, ladder[0].excluded_clusters) == (
        "code", "misc", "summarization", "coreference", "sentiment")
    with pytest.raises(schema.RegistryError, match="needs held-out clusters"):
        schema.plan_splits(registry, cluster_ladder=True)
    trainable = sorted({t.cluster for t in registry.tasks if t.trainable})
    with pytest.raises(schema.RegistryError, match="no trainable cluster is left"):
        schema.plan_splits(registry, trainable, cluster_ladder=True)


def test_the_registry_modules_import_no_beam_pipelines_or_transforms():
    import pathlib
    import subprocess
    import sys

    code = ("import sys, schemas.instruct, schemas.instruct_parse, schemas.instruct_example, schemas.instruct_eval\n"
            "print([m for m in sys.modules if m.split('.')[0] in ('apache_beam', 'pipelines', 'transforms')])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=pathlib.Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]
