"""Where the Multi query's rows come from: a local snapshot, a live BigQuery query, or an export.

Each source is built only when its flag selects it. That matters: Beam's ``ReadFromBigQuery`` on a
local runner without credentials does not fail fast (after its retries it starts an interactive
OAuth flow and blocks), so the snapshot and export paths never construct it, and the live path
checks credentials first and gives every client call a timeout.

Live query: ``ReadFromBigQuery(query=...)`` takes no query parameters, and the SQL's values are
parameters by design, so the query runs through the google-cloud-bigquery client with
``QueryJobConfig(query_parameters=...)`` into a destination table, which ``ReadFromBigQuery(table=...)``
then reads (Storage Read API: no export to GCS, workers read streams in parallel).
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from transforms.sources import github_sql


@dataclasses.dataclass(frozen=True)
class LiveQuery:
    project: str
    destination: str  # project.dataset.table, overwritten by each run
    dataset: str = github_sql.LIVE_DATASET
    stars_table: str = github_sql.STARS_PLACEHOLDER
    priority: str = "BATCH"  # BATCH queues until slots are free; INTERACTIVE starts now
    timeout_s: float = 3600.0  # for every client call; a batch query may wait in the queue
    maximum_bytes_billed: int | None = None  # the job fails instead of scanning more


def _query_parameters(named: dict):
    from google.cloud import bigquery

    out = []
    for name, value in sorted(named.items()):
        if isinstance(value, list):
            out.append(bigquery.ArrayQueryParameter(name, "STRING", value))
        else:
            out.append(bigquery.ScalarQueryParameter(name, "INT64", value))
    return out


def materialise_query(live: LiveQuery, params: github_sql.QueryParams) -> dict:
    """Run the SQL with named parameters into ``live.destination``; ``{job_id, bytes_billed, rows}``.

    Raises ValueError with one line when the client library or credentials are missing, before
    any call that could block.
    """
    try:
        import google.auth
        from google.cloud import bigquery
    except ImportError:
        raise ValueError("the live path needs google-cloud-bigquery: pip install 'sluice[gcp]'") from None
    try:
        credentials, _ = google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise ValueError(f"no Google credentials ({err})") from None
    client = bigquery.Client(project=live.project, credentials=credentials)
    config = bigquery.QueryJobConfig(
        query_parameters=_query_parameters(params.named()),
        destination=live.destination,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        priority=getattr(bigquery.QueryPriority, live.priority),
        use_legacy_sql=False,
        maximum_bytes_billed=live.maximum_bytes_billed,
    )
    sql = github_sql.render("bigquery", live.dataset, live.stars_table)
    job = client.query(sql, job_config=config, timeout=live.timeout_s)
    job.result(timeout=live.timeout_s)
    return {"job_id": job.job_id, "bytes_billed": job.total_bytes_billed,
            "bytes_processed": job.total_bytes_processed, "destination": live.destination}


def read_table(table: str, timeout_s: float) -> beam.PTransform:
    """Beam's BigQuery read of a materialised table (constructed only on the live path)."""
    from apache_beam.io.gcp.bigquery import ReadFromBigQuery

    return ReadFromBigQuery(table=table, method=ReadFromBigQuery.Method.DIRECT_READ, timeout=timeout_s)


def read_files(pattern: str) -> beam.PTransform:
    """Rows from Parquet or Avro files (a staged snapshot result, or an EXPORT DATA of the query)."""
    if pattern.endswith(".avro"):
        return beam.io.ReadFromAvro(pattern)
    return beam.io.ReadFromParquet(pattern)
