"""Optional side outputs as Parquet: the curated documents and every reject with its reason."""

from __future__ import annotations

import apache_beam as beam

from schemas.records import (
    DOCUMENT_PARQUET_SCHEMA,
    REJECT_PARQUET_SCHEMA,
    document_row,
    reject_row,
)


class _WriteRows(beam.PTransform):
    def __init__(self, folder, name, to_row, schema):
        super().__init__()
        self._prefix = f"{folder.rstrip('/')}/{name}/{name}"
        self._to_row = to_row
        self._schema = schema

    def expand(self, pcoll):
        return (
            pcoll
            | "ToRows" >> beam.Map(self._to_row)
            | "Write" >> beam.io.WriteToParquet(
                self._prefix, self._schema, file_name_suffix=".parquet"
            )
        )


def WriteDocuments(output_dir: str) -> beam.PTransform:  # noqa: N802 (a PTransform factory)
    """Documents -> ``OUTPUT/documents/documents-*.parquet``."""
    return _WriteRows(output_dir, "documents", document_row, DOCUMENT_PARQUET_SCHEMA)


def WriteRejects(output_dir: str) -> beam.PTransform:  # noqa: N802 (a PTransform factory)
    """Rejects -> ``OUTPUT/rejects/rejects-*.parquet`` (id, stage, reason, detail)."""
    return _WriteRows(output_dir, "rejects", reject_row, REJECT_PARQUET_SCHEMA)


def _instruct_example_row(item) -> dict:
    from schemas.instruct_example import example_row

    return example_row(getattr(item, "example", item))  # a TokenizedExample or a RenderedExample


def WriteExamples(output_dir: str) -> beam.PTransform:  # noqa: N802 (a PTransform factory)
    """Instruction examples -> ``OUTPUT/examples/examples-*.parquet`` (task, cluster, split, template,
    inverse, id, input, target)."""
    from schemas.instruct_example import example_parquet_schema

    return _WriteRows(output_dir, "examples", _instruct_example_row, example_parquet_schema())
