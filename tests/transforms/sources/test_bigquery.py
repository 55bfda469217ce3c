"""Every query Sluice sends to BigQuery (bigquery.checked_query): a dry run first with the same
parameters, the cost cap checked before and set on the real job, values only as the client
library's query parameters, and EXPORT DATA built from the same SELECT. Checked on the client
library's own job configuration objects, sent to a recording double of bigquery.Client."""

from __future__ import annotations

import json

import pytest
import sqlglot
from google.api_core import exceptions as api_exceptions
from google.cloud import bigquery as bq
from sqlglot import exp

from tests.transforms.sources.bigquery_double import RecordingClient
from transforms.sources import bigquery, github_sql

HOSTILE = "x' OR 1=1 --"
PARAMS = github_sql.QueryParams(languages=("go", "python"), licenses=("mit", HOSTILE), min_stars=7)
LIVE = bigquery.LiveQuery(project="billing-project", destination="p.d.result", timeout_s=42.0)
URI = "gs://sluice-inputs/multi/2026-01-05/part-*.parquet"


def by_name(parameters):
    return {p.name: p for p in parameters}


def test_dry_run_first_then_the_capped_job_into_the_destination():
    client = RecordingClient(estimate=2_300_000_000_000)
    info = bigquery.materialise_query(client, LIVE, PARAMS)
    dry, real = client.sent
    assert dry.config.dry_run is True and dry.config.use_query_cache is False
    assert dry.config.destination is None and dry.sql == real.sql
    assert real.config.dry_run is not True
    assert real.config.maximum_bytes_billed == bigquery.DEFAULT_MAXIMUM_BYTES_BILLED == 5 * 10**12
    assert real.config.destination.path.endswith("/datasets/d/tables/result")
    assert real.config.write_disposition == bq.WriteDisposition.WRITE_TRUNCATE
    assert real.config.priority == bq.QueryPriority.BATCH and real.config.use_legacy_sql is False
    assert dry.config.query_parameters == real.config.query_parameters  # the same values both times
    assert {s.timeout for s in client.sent} == {42.0} and client.jobs[-1].waited == [42.0]
    assert info == {"job_id": "job-2", "bytes_estimated": 2_300_000_000_000, "bytes_billed": 2_300_000_000_000,
                    "bytes_processed": 2_300_000_000_000, "maximum_bytes_billed": 5 * 10**12,
                    "destination": "p.d.result", "export_to": None}


def test_values_are_query_parameters_never_sql_text():
    client = RecordingClient()
    bigquery.materialise_query(client, LIVE, PARAMS)
    named = PARAMS.named()
    for sent in client.sent:
        parameters = by_name(sent.config.query_parameters)
        assert set(parameters) == set(named)
        licenses = parameters["licenses"]
        assert isinstance(licenses, bq.ArrayQueryParameter) and licenses.array_type == "STRING"
        assert licenses.values == sorted(["mit", HOSTILE])
        stars = parameters["min_stars"]
        assert isinstance(stars, bq.ScalarQueryParameter) and (stars.type_, stars.value) == ("INT64", 7)
        assert parameters["extensions"].values == named["extensions"]
        assert "OR 1=1" not in sent.sql and "'mit'" not in sent.sql and "@licenses" in sent.sql


def test_query_parameter_types():
    parameters = by_name(bigquery.query_parameters({"a": ["x"], "b": "y", "c": 3}))
    assert (parameters["a"].array_type, parameters["b"].type_, parameters["c"].type_) == ("STRING", "STRING", "INT64")
    with pytest.raises(TypeError, match="query parameter d"):
        bigquery.query_parameters({"d": True})  # an int to Python, not a BigQuery INT64


def test_over_the_cap_is_refused_before_the_query_is_sent():
    client = RecordingClient(estimate=6 * 10**12)
    with pytest.raises(bigquery.OverCap) as refused:
        bigquery.materialise_query(client, LIVE, PARAMS)
    assert [s.config.dry_run for s in client.sent] == [True]  # the real job was never sent
    message = str(refused.value)
    assert "\n" not in message and "6,000,000,000,000 bytes" in message and "5,000,000,000,000" in message


def test_a_lower_cap_applies_to_both_the_check_and_the_job():
    live = bigquery.LiveQuery(project="p", destination="p.d.t", maximum_bytes_billed=10**9)
    with pytest.raises(bigquery.OverCap):
        bigquery.materialise_query(RecordingClient(estimate=10**9 + 1), live, PARAMS)
    client = RecordingClient(estimate=10**9)  # at the cap: sent, with the cap on the job
    bigquery.materialise_query(client, live, PARAMS)
    assert client.real[0].config.maximum_bytes_billed == 10**9


def test_dry_run_only_sends_the_dry_run_alone():
    client = RecordingClient(estimate=987_654)
    live = bigquery.LiveQuery(project="p", destination="p.d.t", dry_run_only=True)
    with pytest.raises(bigquery.DryRunOnly) as stopped:
        bigquery.materialise_query(client, live, PARAMS)
    assert len(client.sent) == 1 and client.sent[0].config.dry_run is True
    line = json.loads(stopped.value.line())["bigquery_dry_run"]
    assert line == {"bytes_estimated": 987_654, "maximum_bytes_billed": 5 * 10**12, "destination": "p.d.t",
                    "export_to": None}


def test_export_data_runs_the_same_select_with_the_same_parameters():
    client = RecordingClient()
    info = bigquery.materialise_query(client, LIVE, PARAMS, export_to=URI)
    dry, real = client.sent
    select = github_sql.render("bigquery", LIVE.dataset, LIVE.stars_table)
    assert dry.sql == select and dry.config.dry_run is True  # the SELECT is what the export bills
    tree = sqlglot.parse_one(real.sql, read="bigquery")
    assert isinstance(tree, exp.Export)
    assert tree.this == sqlglot.parse_one(select, read="bigquery")
    options = {}
    for prop in tree.args["options"].expressions:
        key = "format" if isinstance(prop, exp.FileFormatProperty) else prop.name.lower()
        value = prop.this if isinstance(prop, exp.FileFormatProperty) else prop.args["value"]
        options[key] = value.this if isinstance(value, exp.Literal) else value.sql()
    assert options == {"uri": URI, "format": "PARQUET", "overwrite": "TRUE"}
    assert real.config.destination is None and real.config.maximum_bytes_billed == 5 * 10**12
    assert real.config.query_parameters == dry.config.query_parameters
    assert "OR 1=1" not in real.sql
    assert info["export_to"] == URI and info["destination"] is None


@pytest.mark.parametrize("uri", [
    "gs://bucket/multi/part.parquet",  # no wildcard: BigQuery needs one to shard
    "gs://bucket/multi/*/part-*.parquet",  # two
    "gs://bucket/multi/part-*.avro",
    "s3://bucket/multi/part-*.parquet",
    "/tmp/multi/part-*.parquet",
    "gs://bucket/multi/x'),(uri='gs://evil/*.parquet'-*.parquet",
    "gs://bucket/multi/a\\'-*.parquet",
    "gs://bucket/multi/part-*.parquet\n",
    "gs://Bucket/multi/part-*.parquet",
])
def test_a_bad_export_uri_is_refused_before_anything_is_sent(uri):
    client = RecordingClient()
    with pytest.raises(ValueError, match="not an export uri"):
        bigquery.materialise_query(client, LIVE, PARAMS, export_to=uri)
    assert client.sent == []


def test_bigquerys_refusal_is_one_line():
    error = api_exceptions.Forbidden("Access Denied: Project billing-project:\n User does not have permission")
    with pytest.raises(ValueError) as refused:
        bigquery.materialise_query(RecordingClient(error=error), LIVE, PARAMS)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("BigQuery refused the dry run: Forbidden: Access Denied")


def test_export_files_older_than_the_export_are_refused(tmp_path):
    import os

    for name in ("part-000.parquet", "part-001.parquet"):
        (tmp_path / name).write_bytes(b"PAR1")
    started = os.path.getmtime(tmp_path / "part-000.parquet")
    assert bigquery.check_export_files(str(tmp_path / "part-*.parquet"), started) == 2
    os.utime(tmp_path / "part-001.parquet", (started - 7 * 86400, started - 7 * 86400))  # last week's
    with pytest.raises(ValueError) as stale:
        bigquery.check_export_files(str(tmp_path / "part-*.parquet"), started)
    assert str(stale.value).startswith(f"1 of 2 files matching {tmp_path}/part-*.parquet predate this export"
                                       f" (first {tmp_path}/part-001.parquet)")
    with pytest.raises(ValueError, match="no file matches"):
        bigquery.check_export_files(str(tmp_path / "none-*.parquet"), started)
