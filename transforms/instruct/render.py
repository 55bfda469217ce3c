"""Rendering an example: a training example's template chosen by hash, an evaluation example under
each forward template, its fields filled in, and a classification task's options listed after the
input.

Every choice by hash uses ``stable_hash`` (the same on every worker and run, unlike Python's
``hash()``): the template here, the caps' ranks (``mixing.py``) and code functions' evaluation share
(``examples.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from schemas.instruct import TEMPLATES_PER_TASK, FieldError, Task, reference_values

OPTIONS_HEADER = "OPTIONS:"


def stable_hash(*parts: Any) -> int:
    """64-bit BLAKE2b of the parts: the same on every worker and run (Python's hash() is not)."""
    text = "\x00".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def template_index(seed: int, task: str, example_id: str, n: int = TEMPLATES_PER_TASK) -> int:
    """The template an example is rendered with: hash(seed, task, id) mod n, so all are used evenly."""
    return stable_hash(seed, "template", task, example_id) % n


def options_of(task: Task, fields: dict) -> list:
    if task.options_field is not None:
        value = fields[task.options_field]
        if not isinstance(value, list) or not value:
            raise FieldError("not_text", f"{task.options_field}: options must be a non-empty list")
        return value
    return list(task.options)


def render(task: Task, index: int, fields: dict) -> tuple[str, str]:
    """(input, target) of template ``index``; forward templates of classification tasks list the
    options after the input (``OPTIONS:`` then ``- option`` lines), as FLAN does."""
    template = task.templates[index]
    for name in set().union(*template.fields()):
        if not isinstance(fields[name], str):
            raise FieldError("not_text", f"{name}: a list cannot fill a template")
    text_input = template.input.format(**fields)
    target = template.target.format(**fields)
    if task.has_options and not template.inverse:
        options = options_of(task, fields)
        text_input = f"{text_input}\n\n{OPTIONS_HEADER}\n" + "\n".join(f"- {o}" for o in options)
    return text_input, target


def references(task: Task, index: int, fields: dict, record: dict, target: str) -> tuple:
    """Every reference answer of an evaluation example under forward template ``index``: the target,
    then each value at the task's ``references`` path put in place of the answer field, each once."""
    found = [target]
    if task.references:
        template = task.templates[index]
        for value in reference_values(record, task.references):
            found.append(template.target.format(**dict(fields, **{task.answer_field: value})))
    return tuple(dict.fromkeys(found))


def render_eval(task: Task, fields: dict, record: dict) -> list:
    """``(template, input, target, references, options)`` under each forward template of the task,
    in template order: how a held-out example is evaluated (FLAN: every template, never an inverse
    one). FieldError when a template cannot be filled or, for a task scored by accuracy, the target
    is not one of the options (rank classification could never choose it)."""
    options = tuple(options_of(task, fields)) if task.has_options else ()
    out = []
    for index in task.forward_templates:
        text_input, target = render(task, index, fields)
        if "accuracy" in task.metrics and target not in options:
            raise FieldError("target_not_an_option", f"template {index}: {target!r} is not an option")
        out.append((index, text_input, target, references(task, index, fields, record, target), options))
    return out
