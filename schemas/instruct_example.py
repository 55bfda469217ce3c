"""The instruction example record: one example rendered with its template, with no Beam import.

What the instruct transforms render, decontaminate, tokenize and (``--write_examples``) write as
Parquet for auditing; ``transforms/stats/side_outputs.py`` writes the rows. A training example is
rendered once, with the template its hash picks; an evaluation example once per forward template
of its task, carrying its metrics, references and options into the evaluation record
(``schemas/instruct_eval.py``).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RenderedExample:
    """One example rendered with its template: what is decontaminated, audited and tokenized."""

    task: str
    cluster: str
    split: str  # "train" or "eval" (the source split it came from)
    id: str  # "<task>/<source id>"; unique within the job
    template: int
    inverse: bool
    input: str
    target: str
    # Evaluation examples only (split "eval"), what scoring needs (``schemas/instruct_eval.py``):
    metrics: tuple = ()  # the task's metrics, the first the primary
    references: tuple = ()  # every reference answer, the target first
    options: tuple = ()  # the classification options shown after the input; () when none

    @property
    def text(self) -> str:
        """What decontamination matches: input and target, since an inverse template puts the
        evaluation question in the target, and training on it leaks it as much."""
        return f"{self.input}\n{self.target}"


def example_parquet_schema():
    """Columns of ``--write_examples``: one row per written example, for auditing a mixture."""
    import pyarrow as pa

    return pa.schema([("task", pa.string()), ("cluster", pa.string()), ("split", pa.string()),
                      ("template", pa.int64()), ("inverse", pa.bool_()), ("id", pa.string()),
                      ("input", pa.large_string()), ("target", pa.large_string())])


def example_row(example: RenderedExample) -> dict:
    return {"task": example.task, "cluster": example.cluster, "split": example.split,
            "template": example.template, "inverse": example.inverse, "id": example.id,
            "input": example.input, "target": example.target}
