"""CountedFilter: kept and rejected elements split, each outcome counted under sluice.<stage>."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Reject
from transforms.stats.counting import CountedFilter


class _RejectOdd:
    """A picklable check with a configuration, as the stages use."""

    def __init__(self, reason: str):
        self.reason = reason

    def __call__(self, n):
        return None if n % 2 == 0 else (self.reason, str(n))


def _record_id(n):
    return f"n{n}"


def test_counted_filter_splits_and_counts(beam_helpers):
    new_pipeline, run, counters = beam_helpers
    p = new_pipeline()
    kept, rejects = (p | "Ints" >> beam.Create(list(range(7)))) | "Unit" >> CountedFilter(
        "unit", _RejectOdd("odd"), record_id=_record_id
    )
    assert_that(kept, equal_to([0, 2, 4, 6]), label="kept")
    assert_that(
        rejects,
        equal_to([Reject(f"n{n}", "unit", "odd", str(n)) for n in (1, 3, 5)]),
        label="rejects",
    )
    # Without record_id, a reject is named by the element's ``id``.
    elements = [Reject(id=f"r{i}", stage="s", reason="x") for i in range(3)]
    kept_none, rejects_all = (p | "Records" >> beam.Create(elements)) | "Other" >> CountedFilter(
        "other", lambda r: ("always", r.reason)
    )
    assert_that(kept_none, equal_to([]), label="kept_none")
    assert_that(rejects_all | beam.Map(lambda r: (r.id, r.stage, r.reason, r.detail)),
                equal_to([(f"r{i}", "other", "always", "x") for i in range(3)]), label="rejects_all")
    result = run(p)
    # Each stage counts in its own namespace.
    assert counters(result, "unit") == {"kept": 4, "odd": 3}
    assert counters(result, "other") == {"always": 3}
    assert counters(result, "missing") == {}


def test_progress_lines_advance_while_counting(monkeypatch, capsys):
    import time

    from transforms.stats import progress
    from transforms.stats.counting import count

    monkeypatch.setenv(progress.ENV, "0.05")
    progress.REPORTER.reset()
    try:
        count("read", "kept", 3)
        count("read", "binary")
        time.sleep(0.3)
        count("read", "kept", 4)
        count("quality", "kept", 2)
        time.sleep(0.3)
    finally:
        monkeypatch.setenv(progress.ENV, "0")
        progress.REPORTER.reset()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("progress ")]
    assert len(lines) == 2  # printed only when the counts changed
    assert lines[0].endswith("read binary=1 kept=3")
    assert lines[1].endswith("read binary=1 kept=7 | quality kept=2")


def test_progress_is_off_by_default(monkeypatch, capsys):
    import time

    from transforms.stats import progress
    from transforms.stats.counting import count

    monkeypatch.delenv(progress.ENV, raising=False)
    progress.REPORTER.reset()
    count("read", "kept")
    time.sleep(0.1)
    assert "progress" not in capsys.readouterr().err
