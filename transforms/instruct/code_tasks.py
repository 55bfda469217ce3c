"""Code tasks from Sluice's own curated code: Python functions with docstrings, found with ``ast``.

Each function (or method) with a docstring in a curated document becomes one record: its name,
qualified name, ``def`` line, the docstring (``ast.get_docstring``: cleaned of its indentation)
and its code with the docstring removed and dedented, so a docstring -> function example never
shows the answer in its input and a function -> docstring example never shows it in its target.
A function is skipped, and counted, when its docstring shares a line with code, when the docstring
is too short to describe anything, or when the function is too long to be one example.
"""

from __future__ import annotations

import ast
import textwrap
from typing import Iterator

import apache_beam as beam

from transforms.stats.counting import KEPT, count

STAGE = "instruct_code"
MIN_DOCSTRING_WORDS = 3
MAX_FUNCTION_LINES = 60


def _functions(tree) -> Iterator[tuple[str, ast.AST]]:
    """(qualified name, node) of every function and method, in source order."""
    stack = [("", node) for node in reversed(tree.body)]
    while stack:
        prefix, node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node
            stack.extend((f"{name}.", child) for child in reversed(node.body))


def python_functions(doc_id: str, path: str, text: str) -> Iterator[tuple]:
    """(``kept`` | reject reason, function id, record or None) for each function with a docstring."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        yield "unparsable", doc_id, None
        return
    lines = text.splitlines()
    for qualname, node in _functions(tree):
        docstring = ast.get_docstring(node)
        if docstring is None:
            continue
        function_id = f"{doc_id}:{qualname}:{node.lineno}"
        first = node.body[0]
        start, end = node.lineno, node.end_lineno
        if len(docstring.split()) < MIN_DOCSTRING_WORDS:
            yield "docstring_too_short", function_id, None
            continue
        if end - start + 1 > MAX_FUNCTION_LINES:
            yield "function_too_long", function_id, None
            continue
        if len(node.body) < 2:
            yield "no_body", function_id, None
            continue
        if (first.lineno == start or node.body[1].lineno == first.end_lineno
                or lines[first.lineno - 1][:first.col_offset].strip()):
            yield "docstring_inline", function_id, None
            continue
        signature_end = first.lineno - 1
        kept = lines[start - 1:first.lineno - 1] + lines[first.end_lineno:end]
        code = textwrap.dedent("\n".join(kept)).strip("\n")
        signature = textwrap.dedent("\n".join(lines[start - 1:signature_end])).strip()
        yield KEPT, function_id, {
            "id": function_id, "name": node.name, "qualname": qualname, "signature": signature,
            "docstring": docstring, "code": code, "path": path,
        }


class _ExtractFn(beam.DoFn):
    def process(self, document):
        doc_id, path, text = document
        for outcome, function_id, record in python_functions(doc_id, path, text):
            count(STAGE, outcome)
            if record is not None:
                yield function_id, record


class ExtractPythonFunctions(beam.PTransform):
    """``(doc id, path, text)`` -> ``(function id, record)`` for functions with docstrings."""

    def expand(self, documents):
        return documents | beam.ParDo(_ExtractFn())
