"""The task registry: the shipped tasks render on real examples; bad registries fail in one line;
the capped mixing rule; held-out splits."""

from __future__ import annotations

import collections
import copy
import json
import pathlib

import pytest
import yaml

from schemas import instruct as schema

ROOT = pathlib.Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "samples" / "instruct" / "tasks.yaml"


@pytest.fixture(scope="module")
def registry():
    return schema.load_registry(str(REGISTRY))


def real_records(task, limit=8):
    """The first records of each of a file-based task's splits (real sample data)."""
    out = []
    for split, pattern in task.source.splits.items():
        for path in schema.expand_paths(pattern):
            for i, (row_id, record) in enumerate(schema.jsonl_records(path)):
                if i == limit:
                    break
                out.append(record)
    return out


def test_shipped_registry_covers_flan_clusters(registry):
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


def test_every_task_renders_every_template_on_real_examples(registry):
    for task in registry.tasks:
        if task.source.format == "mono":
            continue
        records = real_records(task)
        assert records, task.name
        for record in records:
            fields = schema.example_fields(task, record)
            for index, template in enumerate(task.templates):
                text_input, target = schema.render(task, index, fields)
                assert text_input.strip() and target.strip(), (task.name, index)
                has_options = schema.OPTIONS_HEADER in text_input
                assert has_options == (task.has_options and not template.inverse), (task.name, index)
                if has_options:
                    listed = text_input.split(schema.OPTIONS_HEADER + "\n", 1)[1].split("\n")
                    options = schema.options_of(task, fields)
                    assert listed == [f"- {o}" for o in options]
                    assert target in options, (task.name, index, target)


def real_functions(limit=12):
    """Functions with docstrings from a real sample archive (click), as the code tasks get them."""
    import tarfile

    from transforms.instruct.code_tasks import python_functions

    out = []
    with tarfile.open(ROOT / "samples" / "mono" / "archives" / "click-8.1.7.tar.gz") as tar:
        for member in tar.getmembers():
            if member.name.endswith("src/click/utils.py"):
                text = tar.extractfile(member).read().decode("utf-8")
                out += [rec for outcome, _, rec in python_functions("click:utils.py", "utils.py", text)
                        if outcome == "kept"]
    return out[:limit]


def test_code_tasks_render_every_template_on_real_functions(registry):
    functions = real_functions()
    assert len(functions) == 12
    for name in ("code_docstring_to_function", "code_function_to_docstring"):
        task = registry.task(name)
        for record in functions:
            fields = schema.example_fields(task, record)
            for index, template in enumerate(task.templates):
                text_input, target = schema.render(task, index, fields)
                answer = record["code"] if "{code}" in template.target else record["docstring"]
                assert target == answer
                assert answer not in text_input  # the answer is never in the input
                assert record["docstring"] not in record["code"]


def test_inverse_templates_swap_the_roles_of_fields(registry):
    swapped = 0
    for task in registry.tasks:
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


def test_inverse_rendering_on_a_real_sentiment_example(registry):
    task = registry.task("poem_sentiment")
    record = real_records(task, 1)[0]
    fields = schema.example_fields(task, record)
    forward = schema.render(task, 0, fields)
    inverse_index = next(i for i, t in enumerate(task.templates) if t.inverse)
    inverse = schema.render(task, inverse_index, fields)
    assert forward[1] == fields["sentiment"] and record["verse_text"] in forward[0]
    assert inverse[1] == record["verse_text"] and fields["sentiment"] in inverse[0]
    assert schema.OPTIONS_HEADER not in inverse[0]


def test_templates_are_chosen_by_hash_and_used_evenly():
    picks = collections.Counter(schema.template_index(0, "t", f"id{i}") for i in range(2000))
    assert sorted(picks) == list(range(10))
    assert all(150 <= n <= 250 for n in picks.values())
    assert schema.template_index(0, "t", "id1") == schema.template_index(0, "t", "id1")
    assert [schema.template_index(1, "t", f"id{i}") for i in range(50)] != \
        [schema.template_index(0, "t", f"id{i}") for i in range(50)]


def test_field_mapping_forms():
    spec = schema._parse_field("a", {"path": "xs", "join": "; ", "inner_join": " | "}, "w")
    assert schema.field_value({"xs": [["s", "p", "o"], ["s2", "p2", 1]]}, spec) == "s | p | o; s2 | p2 | 1"
    spec = schema._parse_field("a", {"path": "label", "map": {-1: "negative", True: "yes"}}, "w")
    assert schema.field_value({"label": -1}, spec) == "negative"
    assert schema.field_value({"label": True}, spec) == "yes"
    with pytest.raises(schema.FieldError) as err:
        schema.field_value({"label": 5}, spec)
    assert err.value.reason == "unmapped_value"
    spec = schema._parse_field("a", {"choices": "opts", "index": "c", "index_map": {"A": 0, "B": 1}}, "w")
    assert schema.field_value({"opts": ["x", "y"], "c": "B"}, spec) == "y"
    spec = schema._parse_field("a", {"choices": ["s1", "s2"], "index": "label"}, "w")
    assert schema.field_value({"s1": "x", "s2": "y", "label": "1"}, spec) == "y"
    with pytest.raises(schema.FieldError) as err:
        schema.field_value({"s1": "x", "s2": "y", "label": 2}, spec)
    assert err.value.reason == "bad_index"
    spec = schema._parse_field("a", "answers.0.text", "w")
    assert schema.field_value({"answers": [{"text": "Denver"}]}, spec) == "Denver"
    with pytest.raises(schema.FieldError) as err:
        schema.field_value({"answers": []}, spec)
    assert err.value.reason == "missing_field"


# ------------------------------------------------------------------------------- bad registries


def tiny_registry(tmp_path) -> dict:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"q": "what is up?", "a": "the sky", "label": 1}) + "\n")
    for folder in ("a", "b"):  # two more files of the same name, for the unique-name check
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "data.jsonl").write_text(data.read_text())
    templates = [{"input": f"Q{i}: {{question}}", "target": "{answer}"} for i in range(10)]
    return {"tasks": [{"name": "qa", "cluster": "closed_book_qa",
                       "source": {"format": "jsonl", "splits": {"train": str(data)}},
                       "fields": {"question": "q", "answer": "a"}, "templates": templates}]}


def load(tmp_path, data) -> schema.Registry:
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(data))
    return schema.load_registry(str(path))


def test_tiny_registry_loads(tmp_path):
    registry = load(tmp_path, tiny_registry(tmp_path))
    assert registry.task("qa").trainable and not registry.task("qa").has_eval


@pytest.mark.parametrize("change, message", [
    (lambda d: d["tasks"][0]["templates"][3].update(input="Q: {question} {context}"),
     "task qa: template 3 names context, not a mapped field"),
    (lambda d: d["tasks"][0]["fields"].update(answer="answer_text"),
     r"task qa: source train \(.*data.jsonl\) lacks mapped field answer_text"),
    (lambda d: d["tasks"][0]["templates"].pop(), "task qa: needs 10 templates, has 9"),
    (lambda d: [t.update(inverse=True) for t in d["tasks"][0]["templates"][:4]], "4 inverse templates, at most 3"),
    (lambda d: d["tasks"][0]["source"].update(format="csv"), "source format 'csv' is not one of"),
    (lambda d: d["tasks"][0]["source"]["splits"].update(train="/nonexistent/*.jsonl"), "no file matches"),
    (lambda d: d["tasks"][0].update(options={"field": "choices"}), "options field 'choices' is not a mapped field"),
    (lambda d: d["tasks"][0]["templates"][0].update(target="{answer!r}"), "must be a plain {field_name}"),
    (lambda d: d["tasks"].append(copy.deepcopy(d["tasks"][0])), "task names occur twice: qa"),
    (lambda d: d.update(close_clusters={"closed_book_qa": ["nli"]}), "close_clusters names clusters no task has"),
    (lambda d: d["tasks"][0]["source"]["splits"].update(train=d["tasks"][0]["source"]["splits"]["train"].replace(
        "data.jsonl", "*/data.jsonl")), "several files named data.jsonl"),
])
def test_bad_registry_fails_with_one_clear_line(tmp_path, change, message):
    data = tiny_registry(tmp_path)
    change(data)
    with pytest.raises(schema.RegistryError, match=message) as err:
        load(tmp_path, data)
    assert "\n" not in str(err.value) and str(err.value).startswith("registry ")


def test_unparsable_registry(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text("tasks: [unclosed\n")
    with pytest.raises(schema.RegistryError, match="not YAML/JSON"):
        schema.load_registry(str(path))


# ------------------------------------------------------------------------------- mixing rule


def test_mixing_follows_the_capped_rule_exactly():
    available = {"big": 5000, "mid": 1000, "small": 200}
    plan = schema.mixture_plan(available, mixing_cap=3000)
    assert {t: e["rate"] for t, e in plan.items()} == {"big": 3000 / 4200, "mid": 1000 / 4200, "small": 200 / 4200}
    assert {t: e["examples"] for t, e in plan.items()} == {"big": 3000, "mid": 1000, "small": 200}
    assert all(e["copies"] in (0, 1) for e in plan.values())
    # A larger mixture keeps the rates: small tasks repeat, the lowest keys once more.
    plan = schema.mixture_plan(available, mixing_cap=3000, size=8401)
    examples = {t: e["examples"] for t, e in plan.items()}
    assert sum(examples.values()) == 8401
    assert examples == {"big": 6001, "mid": 2000, "small": 400}  # 6000.71.., 2000.24.., 400.05..
    assert (plan["big"]["copies"], plan["big"]["extra"]) == (1, 1001)
    assert (plan["small"]["copies"], plan["small"]["extra"]) == (2, 0)


def test_apportion_is_exact_and_ties_break_by_name():
    assert schema.apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert schema.apportion(0, {"a": 1}) == {"a": 0}
    assert schema.apportion(5, {"a": 0}) == {"a": 0}


# ------------------------------------------------------------------------------- held-out splits


def test_holdout_splits(registry):
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


def test_hf_source_without_the_datasets_library_is_one_clear_line(tmp_path, monkeypatch):
    data = tiny_registry(tmp_path)
    data["tasks"][0]["source"] = {"format": "hf_disk", "path": str(tmp_path), "splits": {"train": "train"}}
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # as if not installed
    with pytest.raises(schema.RegistryError, match="needs the 'datasets' library"):
        load(tmp_path, data)
