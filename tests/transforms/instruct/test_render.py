"""Rendering: every shipped task renders every template on real examples (classification options
after forward inputs, inverse templates swapping fields, code tasks never showing the answer), and
templates are chosen by hash, evenly."""

from __future__ import annotations

import collections
import pathlib

from schemas.instruct import example_fields
from transforms.instruct.render import OPTIONS_HEADER, options_of, render, template_index
from transforms.instruct.task_sources import expand_paths, jsonl_records

ROOT = pathlib.Path(__file__).resolve().parents[3]


def real_records(task, limit=8):
    """The first records of each of a file-based task's splits (real sample data)."""
    out = []
    for split, pattern in task.source.splits.items():
        for path in expand_paths(pattern):
            for i, (row_id, record) in enumerate(jsonl_records(path)):
                if i == limit:
                    break
                out.append(record)
    return out


def test_every_task_renders_every_template_on_real_examples(instruct_registry):
    for task in instruct_registry.tasks:
        if task.source.format == "mono":
            continue
        records = real_records(task)
        assert records, task.name
        for record in records:
            fields = example_fields(task, record)
            for index, template in enumerate(task.templates):
                text_input, target = render(task, index, fields)
                assert text_input.strip() and target.strip(), (task.name, index)
                has_options = OPTIONS_HEADER in text_input
                assert has_options == (task.has_options and not template.inverse), (task.name, index)
                if has_options:
                    listed = text_input.split(OPTIONS_HEADER + "\n", 1)[1].split("\n")
                    options = options_of(task, fields)
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


def test_code_tasks_render_every_template_on_real_functions(instruct_registry):
    functions = real_functions()
    assert len(functions) == 12
    for name in ("code_docstring_to_function", "code_function_to_docstring"):
        task = instruct_registry.task(name)
        for record in functions:
            fields = example_fields(task, record)
            for index, template in enumerate(task.templates):
                text_input, target = render(task, index, fields)
                answer = record["code"] if "{code}" in template.target else record["docstring"]
                assert target == answer
                assert answer not in text_input  # the answer is never in the input
                assert record["docstring"] not in record["code"]


def test_inverse_rendering_on_a_real_sentiment_example(instruct_registry):
    task = instruct_registry.task("poem_sentiment")
    record = real_records(task, 1)[0]
    fields = example_fields(task, record)
    forward = render(task, 0, fields)
    inverse_index = next(i for i, t in enumerate(task.templates) if t.inverse)
    inverse = render(task, inverse_index, fields)
    assert forward[1] == fields["sentiment"] and record["verse_text"] in forward[0]
    assert inverse[1] == record["verse_text"] and fields["sentiment"] in inverse[0]
    assert OPTIONS_HEADER not in inverse[0]


def test_templates_are_chosen_by_hash_and_used_evenly():
    picks = collections.Counter(template_index(0, "t", f"id{i}") for i in range(2000))
    assert sorted(picks) == list(range(10))
    assert all(150 <= n <= 250 for n in picks.values())
    assert template_index(0, "t", "id1") == template_index(0, "t", "id1")
    assert [template_index(1, "t", f"id{i}") for i in range(50)] != \
        [template_index(0, "t", f"id{i}") for i in range(50)]


def test_evaluation_renders_each_forward_template_with_references_and_options(instruct_registry):
    """An evaluation example: every forward template, none inverse, its target first among its
    references (NQ-open's answer list) and its options (fixed or its own)."""
    import dataclasses

    import pytest

    from schemas.instruct import FieldError
    from transforms.instruct.render import render_eval

    nq = instruct_registry.task("nq_open")
    record = real_records(nq, 1)[0]  # "when was the last time anyone was on the moon"
    rendered = render_eval(nq, example_fields(nq, record), record)
    assert [index for index, *_ in rendered] == list(nq.forward_templates) == list(range(7))
    for index, text_input, target, references, options in rendered:
        assert (text_input, target) == render(nq, index, example_fields(nq, record))
        assert references == ("14 December 1972 UTC", "December 1972") and options == ()
    for name in ("wsc", "e_snli", "aqua_rat"):
        task = instruct_registry.task(name)
        for record in real_records(task):
            fields = example_fields(task, record)
            out = render_eval(task, fields, record)
            assert [index for index, *_ in out] == [i for i, t in enumerate(task.templates) if not t.inverse]
            for _, text_input, target, references, options in out:
                assert options == tuple(options_of(task, fields)) and target in options
                assert references == (target,) and text_input.endswith("\n".join(f"- {o}" for o in options))
    # A target that is not one of the options could never be chosen by rank classification.
    e_snli = instruct_registry.task("e_snli")
    wrong = dataclasses.replace(e_snli, options=("yes", "no"))
    record = next(r for r in real_records(e_snli) if r["label"] == "neutral")
    with pytest.raises(FieldError) as err:
        render_eval(wrong, example_fields(wrong, record), record)
    assert err.value.reason == "target_not_an_option"
