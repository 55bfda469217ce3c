"""Where the Multi query's rows come from: a local snapshot, a live BigQuery query, or an export;
and the one way Sluice sends any query to BigQuery (``checked_query``).

Each source is built only when its flag selects it. That matters: Beam's ``ReadFromBigQuery`` on a
local runner without credentials does not fail fast (after its retries it starts an interactive
OAuth flow and blocks), so the snapshot and export paths never construct it, and the live path
checks credentials first (``connect``) and gives every client call a timeout.

Live query: ``ReadFromBigQuery(query=...)`` takes no query parameters, and the SQL's values are
parameters by design, so the query runs through the google-cloud-bigquery client with
``QueryJobConfig(query_parameters=...)`` into a destination table, which ``ReadFromBigQuery(table=...)``
then reads (Storage Read API: no export to GCS, workers read streams in parallel); or as an
``EXPORT DATA`` of the same SELECT to Parquet files on GCS, which the pipeline then reads.

Cost: BigQuery bills on-demand queries by the bytes they scan, and ``github_repos.contents`` alone
is ~2.3 TB a scan. Every query is therefore dry-run first (free, nothing runs): its estimate is
logged and returned for the manifest, a query over the cap is refused before it is sent, and the
cap is also set on the real job (``maximum_bytes_billed``), so BigQuery itself fails a job whose
estimate was wrong rather than bill past it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re

import apache_beam as beam

from transforms.sources import github_sql

_LOG = logging.getLogger(__name__)
# 5 TB (~4.5 TiB, about $28 at on-demand's $6.25/TiB): the Multi query's scan of contents, files,
# licenses and sample_repos (~2.3 TB + a few hundred GB) fits with room for the tables' growth; a
# query that would scan twice that is a mistake (a wrong dataset, a missing filter), not a run.
DEFAULT_MAXIMUM_BYTES_BILLED = 5 * 10**12
EXPORT_CLOCK_SLACK_S = 600.0  # check_export_files: a file older than the export by more is stale
# EXPORT DATA writes to GCS only, through one '*' in the file name (BigQuery numbers the files there).
# The bucket follows GCS's naming rules; object names are kept to a plain character set, so the
# value quoted into the statement can hold no quote, backslash or newline.
_EXPORT_URI = re.compile(
    r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/(?:[A-Za-z0-9._=-]+/)*[A-Za-z0-9._=-]*\*[A-Za-z0-9._=-]*\.parquet$")


@dataclasses.dataclass(frozen=True)
class LiveQuery:
    """How a query is sent: billed to ``project``, capped at ``maximum_bytes_billed``."""

    project: str
    destination: str | None = None  # project.dataset.table, overwritten by each run (Multi's live read)
    dataset: str = github_sql.LIVE_DATASET
    stars_table: str = github_sql.STARS_PLACEHOLDER
    priority: str = "BATCH"  # BATCH queues until slots are free; INTERACTIVE starts now
    timeout_s: float = 3600.0  # for every client call; a batch query may wait in the queue
    maximum_bytes_billed: int = DEFAULT_MAXIMUM_BYTES_BILLED  # refused past it, and the job fails past it
    dry_run_only: bool = False  # send the dry run, report its estimate (DryRunOnly), run nothing


class OverCap(ValueError):
    """The dry run's estimate is over ``maximum_bytes_billed``: the query was not sent."""


class DryRunOnly(Exception):
    """``LiveQuery.dry_run_only``: the dry run's estimate (``estimate``), nothing ran or was billed.
    Drivers print ``line()`` and exit 0."""

    def __init__(self, estimate: dict):
        super().__init__("BigQuery dry run only")
        self.estimate = estimate

    def line(self) -> str:
        return json.dumps({"bigquery_dry_run": self.estimate}, sort_keys=True)


def query_parameters(named: dict) -> list:
    """``{name: value}`` as the client's parameter objects: a list of strings is a STRING array,
    a string a STRING, an int an INT64 (bool is refused: it is an int to Python, not to SQL)."""
    from google.cloud import bigquery

    out = []
    for name, value in sorted(named.items()):
        if isinstance(value, (list, tuple)):
            out.append(bigquery.ArrayQueryParameter(name, "STRING", list(value)))
        elif isinstance(value, str):
            out.append(bigquery.ScalarQueryParameter(name, "STRING", value))
        elif isinstance(value, int) and not isinstance(value, bool):
            out.append(bigquery.ScalarQueryParameter(name, "INT64", value))
        else:
            raise TypeError(f"query parameter {name}: no BigQuery type for {value!r}")
    return out


def connect(live: LiveQuery):
    """A ``bigquery.Client`` billed to ``live.project``; ValueError with one line when the client
    library or credentials are missing, before any call that could block."""
    try:
        import google.auth
        from google.cloud import bigquery
    except ImportError:
        raise ValueError("the live path needs google-cloud-bigquery: pip install 'sluice[gcp]'") from None
    try:
        credentials, _ = google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise ValueError(f"no Google credentials ({err})") from None
    return bigquery.Client(project=live.project, credentials=credentials)


def check_export_uri(uri: str) -> str:
    """``uri`` if it is a GCS Parquet uri EXPORT DATA can write (``_EXPORT_URI``), else ValueError."""
    if not _EXPORT_URI.fullmatch(uri):  # fullmatch: "$" alone would accept a trailing newline
        raise ValueError(f"not an export uri: {uri!r} (want gs://BUCKET/PATH/NAME-*.parquet: one '*',"
                         " letters, digits and . _ = - only)")
    return uri


def export_statement(select_sql: str, uri: str) -> str:
    """``EXPORT DATA OPTIONS(uri=..., format='PARQUET', overwrite=true) AS <select_sql>``, built
    in sqlglot's syntax tree. OPTIONS values cannot be query parameters in BigQuery, so the uri is
    checked against a strict pattern (ValueError otherwise) and then written as a string literal;
    the SELECT keeps its named parameters."""
    import sqlglot
    from sqlglot import exp

    check_export_uri(uri)
    options = exp.Properties(expressions=[
        exp.Property(this=exp.var("uri"), value=exp.Literal.string(uri)),
        exp.Property(this=exp.var("format"), value=exp.Literal.string("PARQUET")),
        exp.Property(this=exp.var("overwrite"), value=exp.true()),
    ])
    select = sqlglot.parse_one(select_sql, read="bigquery")
    return exp.Export(this=select, options=options).sql(dialect="bigquery", pretty=True)


@contextlib.contextmanager
def _one_line(what: str):
    """BigQuery's refusal (bad SQL, no permission, the job over its byte cap) as a one-line
    ValueError instead of the client's multi-line traceback."""
    from google.api_core import exceptions

    try:
        yield
    except exceptions.GoogleAPICallError as err:
        message = " ".join(str(getattr(err, "message", err) or err).split())
        raise ValueError(f"BigQuery refused {what}: {type(err).__name__}: {message}") from None


def _job_config(live: LiveQuery, parameters: list, **fields):
    from google.cloud import bigquery

    return bigquery.QueryJobConfig(query_parameters=parameters, use_legacy_sql=False,
                                   priority=getattr(bigquery.QueryPriority, live.priority), **fields)


def checked_query(client, live: LiveQuery, sql: str, named: dict, destination: str | None = None,
                  export_to: str | None = None):
    """Send ``sql`` with the named parameters ``named``, safely: ``(the finished job, info)``.

    1. A dry run of ``sql`` (same parameters, no cache, so the estimate is the scan's): its bytes
       are logged; over ``live.maximum_bytes_billed`` is an OverCap (one line naming both) and
       nothing else is sent; ``live.dry_run_only`` stops here with DryRunOnly.
    2. The real job, with ``maximum_bytes_billed`` set on it too: ``sql`` into ``destination``
       (overwritten) when given, or ``EXPORT DATA`` of ``sql`` to the GCS uri ``export_to``
       (``export_statement``); waits up to ``live.timeout_s``.

    ``info``: job_id, bytes_estimated, bytes_billed, bytes_processed, maximum_bytes_billed,
    destination, export_to. ``client`` is a ``bigquery.Client`` (``connect``).
    """
    from google.cloud import bigquery

    if destination and export_to:
        raise ValueError("a query goes to a destination table or an export, not both")
    statement = export_statement(sql, export_to) if export_to else sql
    parameters = query_parameters(named)
    with _one_line("the dry run"):
        dry = client.query(sql, job_config=_job_config(live, parameters, dry_run=True, use_query_cache=False),
                           timeout=live.timeout_s)
    estimate = int(dry.total_bytes_processed or 0)
    cap = live.maximum_bytes_billed
    info = {"bytes_estimated": estimate, "maximum_bytes_billed": cap, "destination": destination,
            "export_to": export_to}
    _LOG.warning("BigQuery dry run: the query would process %s bytes (%.2f TB) of at most %s", f"{estimate:,}",
                 estimate / 1e12, f"{cap:,}")
    if estimate > cap:
        raise OverCap(f"the query would process {estimate:,} bytes, over the cap of {cap:,} bytes"
                      " (nothing was run)")
    if live.dry_run_only:
        raise DryRunOnly(info)
    fields = {"maximum_bytes_billed": cap}
    if destination:
        fields.update(destination=destination, write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)
    with _one_line("the query"):
        job = client.query(statement, job_config=_job_config(live, parameters, **fields), timeout=live.timeout_s)
        job.result(timeout=live.timeout_s)
    return job, {"job_id": job.job_id, **info, "bytes_billed": job.total_bytes_billed,
                 "bytes_processed": job.total_bytes_processed}


def materialise_query(client, live: LiveQuery, params: github_sql.QueryParams, export_to: str | None = None) -> dict:
    """The Multi SQL run live (``checked_query``) into ``live.destination``, or exported to the
    GCS uri ``export_to``: the manifest's record of the job."""
    sql = github_sql.render("bigquery", live.dataset, live.stars_table)
    _, info = checked_query(client, live, sql, params.named(),
                            destination=None if export_to else live.destination, export_to=export_to)
    return info


def check_export_files(pattern: str, started_s: float, slack_s: float = EXPORT_CLOCK_SLACK_S) -> int:
    """How many files match ``pattern`` after an export that started at ``started_s`` (epoch
    seconds, this machine's clock); ValueError with one line when none does, or when one was last
    written before ``started_s - slack_s``. EXPORT DATA overwrites the files it writes, but nothing
    removes the extra files of an earlier, larger export to the same uri, and the read that follows
    would take them for this run's rows. ``slack_s`` absorbs clock skew with the storage service."""
    from apache_beam.io.filesystems import FileSystems

    files = FileSystems.match([pattern])[0].metadata_list
    if not files:
        raise ValueError(f"no file matches {pattern} after the export")
    stale = sorted(f.path for f in files if f.last_updated_in_seconds < started_s - slack_s)
    if stale:
        raise ValueError(f"{len(stale)} of {len(files)} files matching {pattern} predate this export"
                         f" (first {stale[0]}): left by an earlier export; export to a new folder")
    return len(files)


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
