"""The instruction example record: its Parquet row matches the audit schema, and decontamination
matches input and target together."""

from __future__ import annotations

import pyarrow as pa

from schemas.instruct_example import RenderedExample, example_parquet_schema, example_row


def test_example_row_fits_the_parquet_schema():
    example = RenderedExample(task="qa", cluster="closed_book_qa", split="eval", id="qa/data.jsonl:0",
                              template=7, inverse=True, input="Write the question.", target="what is up?")
    table = pa.Table.from_pylist([example_row(example)], schema=example_parquet_schema())
    assert table.to_pylist() == [example_row(example)]
    assert table.schema.names == ["task", "cluster", "split", "template", "inverse", "id", "input", "target"]
    assert example.text == "Write the question.\nwhat is up?"  # an inverse template's question is its target
