"""Rendering an example: its template chosen by hash, its fields filled in, and a classification
task's options listed after the input.

Every choice by hash uses ``stable_hash`` (the same on every worker and run, unlike Python's
``hash()``): the template here, the caps' ranks (``mixing.py``) and code functions' evaluation share
(``examples.py``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from schemas.instruct import TEMPLATES_PER_TASK, FieldError, Task

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
