"""A recording test double of ``google.cloud.bigquery.Client`` (the real service is unreachable
from tests): it keeps every ``query(sql, job_config=..., timeout=...)`` it is sent, with the
client library's own ``QueryJobConfig``, so tests assert on exactly what would go to BigQuery."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Sent:
    sql: str
    config: object  # google.cloud.bigquery.QueryJobConfig
    timeout: float | None


class FinishedJob:
    """What ``client.query`` returns, as far as Sluice reads it."""

    def __init__(self, job_id: str, processed: int, billed: int | None, rows=()):
        self.job_id = job_id
        self.rows = list(rows)  # the result's rows, as dicts (the client's Row has the same .items())
        self.total_bytes_processed = processed
        self.total_bytes_billed = billed
        self.waited: list = []

    def result(self, timeout=None, page_size=None):
        self.waited.append(timeout)
        return self

    def __iter__(self):
        return iter(self.rows)


class RecordingClient:
    """Answers a dry run with ``estimate`` bytes processed (none billed), and a real job with a
    finished job that processed and billed ``estimate`` and holds ``rows``; ``error``, when set, is raised instead."""

    def __init__(self, estimate: int = 123_456_789, error: Exception | None = None, rows=()):
        self.estimate = estimate
        self.rows = list(rows)
        self.error = error
        self.sent: list[Sent] = []
        self.jobs: list[FinishedJob] = []

    def query(self, sql, job_config=None, timeout=None):
        self.sent.append(Sent(sql, job_config, timeout))
        if self.error is not None:
            raise self.error
        dry = bool(job_config and job_config.dry_run)
        job = FinishedJob(f"job-{len(self.sent)}", self.estimate, None if dry else self.estimate,
                          () if dry else self.rows)
        self.jobs.append(job)
        return job

    @property
    def real(self) -> list[Sent]:
        """The queries sent that were not dry runs."""
        return [s for s in self.sent if not s.config.dry_run]
