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


def _is_avro(path: str) -> bool:
    return path.endswith(".avro")


def export_columns(pattern: str) -> list[tuple[str, frozenset]]:
    """``(path, column names)`` of every file the export glob matches (any Beam filesystem), in
    path order, from the Parquet footer or the Avro header only: a rule the rows cannot carry the
    data for (``--min_stars`` without a ``stars`` column) is refused before any work, not passed.
    ValueError, one line naming the file, for a file that is neither."""
    import fastavro
    import pyarrow as pa
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import CompressionTypes, FileSystems

    paths = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    out = []
    for path in paths:
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                if _is_avro(path):
                    fields = fastavro.reader(handle).writer_schema["fields"]
                    names = frozenset(field["name"] for field in fields)
                else:
                    names = frozenset(pq.ParquetFile(handle).schema_arrow.names)
        except (OSError, ValueError, KeyError, pa.ArrowException) as err:  # not the format, cut, unreadable
            raise ValueError(f"{path}: not a readable {'Avro' if _is_avro(path) else 'Parquet'} file"
                             f" ({(str(err).splitlines() or [type(err).__name__])[0]})") from None
        out.append((path, names))
    return out


def read_files(pattern: str) -> beam.PTransform:
    """Rows from Parquet or Avro files (a staged snapshot result, or an EXPORT DATA of the query)."""
    if _is_avro(pattern):
        return beam.io.ReadFromAvro(pattern)
    return beam.io.ReadFromParquet(pattern)
