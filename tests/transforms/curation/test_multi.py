"""The Multi curation chain on real code rows: row rules, code quality and exact dedup, each reject counted."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from pipelines.driver import pipeline_options
from transforms.curation.multi import CurateMultiRows, Selection
from transforms.filters.quality import QualityThresholds
from transforms.sources.github_sql import QueryParams

ROOT = Path(__file__).resolve().parents[3]


def selection() -> Selection:
    params = QueryParams(languages=("go", "python"), licenses=("mit",), min_bytes=1, max_bytes=1 << 20,
                         min_stars=0)
    return Selection(mode="export", params=params, stars_table="sample_repos", licenses=("MIT",),
                     quality=QualityThresholds())


def row(path: str, text: str, language: str = "python", license_: str = "mit", repo: str = "o/r") -> dict:
    return {"repo_name": repo, "path": path, "language": language, "content": text, "license": license_,
            "id": path}


def test_rows_become_documents_and_every_reject_names_its_stage_and_reason():
    code = (ROOT / "pipelines" / "versions.py").read_text()  # real Python source
    rows = [
        row("a.py", code),
        row("copy.py", code),                                   # exact duplicate of a.py
        row("b.c", code, language="c"),                          # language not selected
        row("c.py", code, license_="gpl-3.0"),                   # license not allowed
        row("d.py", "x = 1\n" + "9" * 5000 + "\n"),              # fails the quality filter
        {"repo_name": "o/r", "path": "e.py", "language": "python", "license": "mit", "id": "e"},  # no content
    ]
    with beam.Pipeline(options=pipeline_options([])) as pipeline:
        curated = pipeline | CurateMultiRows(beam.Create(rows), selection())
        assert_that(curated.documents | "Ids" >> beam.Map(lambda d: (d.id, d.language, d.license)),
                    equal_to([("o/r:a.py", "python", "MIT")]), label="Kept")
        reasons = (curated.rejects | beam.Flatten()
                   | beam.Map(lambda r: (r.id, r.stage, r.reason)))
        assert_that(reasons, equal_to([
            ("o/r:b.c", "read", "language_not_selected"),
            ("o/r:c.py", "read", "license_not_allowed"),
            ("o/r:e.py", "read", "missing_field"),
            ("o/r:copy.py", "exact_dedup", "exact_duplicate"),
            ("o/r:d.py", "quality", "max_line_length"),
        ]), label="Rejects")
        assert_that(curated.row_ids | beam.Map(lambda item: item[0]),
                    equal_to([f"o/r:{r['path']}" for r in rows]), label="EveryRowTallied")
