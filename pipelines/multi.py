"""The Multi corpus: GitHub files in six languages, selected by one SQL query, to packed streams.

    python -m pipelines.multi --bigquery_snapshot DIR --output DIR --tokenizer MODEL.model \
        [--languages c,cpp,go,java,javascript,python] [--licenses ...] [--min_stars N] \
        [--stars_table sample_repos] [--min_file_bytes N] [--max_file_bytes N] \
        [--no-language_tags] [stream, decontamination and near-dedup flags] [any Beam option]
    ... --bigquery_project P --bigquery_destination P.D.T    (live query, Dataflow)
    ... --bigquery_export 'gs://BUCKET/multi/*.parquet'      (an EXPORT DATA of the query)

Stages: query (transforms/sources/sql/github_repos_multi.sql: license, stars, binary, extension and size
rules, one row per content id) -> rows to documents -> code quality -> exact dedup ->
decontamination -> near-dedup within each language -> tokenize with the language tag first ->
global shuffle -> pack -> write, then the driver writes ``manifest.json`` last, with a
``languages`` section.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import NamedTuple

import apache_beam as beam

from pipelines import common, flags
from transforms.sources import bigquery
from transforms.sources import github_sql
from transforms.dedup.exact import ExactDedup
from transforms.sources.github_rows import RowRules, RowsToDocuments
from transforms.stats.language_stats import WriteLanguageStats, languages_report
from transforms.filters.licenses import DEFAULT_ALLOWED, normalize_allow_list
from transforms.filters.quality import FilterCodeQuality, QualityThresholds
from transforms.stats.run_stats import read_json

DATASET = "multi"


def add_source_flags(parser) -> None:
    """Where the rows come from: exactly one of a snapshot, a live query or an export."""
    parser.add_argument("--bigquery_snapshot",
                        help="Local folder with contents/files/licenses/languages/sample_repos .parquet:"
                             " the SQL runs there, transpiled to DuckDB (the default for local runs).")
    parser.add_argument("--bigquery_project", help="Run the SQL live on BigQuery, billed to this project.")
    parser.add_argument("--bigquery_destination",
                        help="project.dataset.table the live query's result is written to (overwritten).")
    parser.add_argument("--bigquery_dataset", default=github_sql.LIVE_DATASET,
                        help="Dataset holding the github_repos tables (live query).")
    parser.add_argument("--bigquery_priority", choices=("BATCH", "INTERACTIVE"), default="BATCH")
    parser.add_argument("--bigquery_timeout_s", type=common.positive_int, default=3600,
                        help="Timeout of every BigQuery client call (live query).")
    parser.add_argument("--bigquery_maximum_bytes_billed", type=common.positive_int, default=None,
                        help="The live query fails rather than bill more bytes than this.")
    parser.add_argument("--bigquery_export",
                        help="Parquet or Avro files of an EXPORT DATA of the query (any Beam filesystem glob).")


def add_selection_flags(parser) -> None:
    q = QualityThresholds()
    parser.add_argument("--languages", type=common.comma_list, default=tuple(github_sql.DEFAULT_EXTENSIONS),
                        help=f"Comma-separated languages ({', '.join(github_sql.DEFAULT_EXTENSIONS)}).")
    parser.add_argument("--licenses", type=common.comma_list, default=DEFAULT_ALLOWED,
                        help="Comma-separated allowed licenses (SPDX ids or GitHub keys).")
    parser.add_argument("--min_stars", type=common.non_negative_int, default=0)
    parser.add_argument("--stars_table", default=github_sql.STARS_PLACEHOLDER,
                        help="Table of (repo_name, watch_count): one of the dataset's, or"
                             " project.dataset.table.")
    parser.add_argument("--min_file_bytes", type=common.non_negative_int, default=1)
    parser.add_argument("--max_file_bytes", type=common.positive_int, default=1 << 20)
    parser.add_argument("--max_avg_line_length", type=float, default=q.max_avg_line_length)
    parser.add_argument("--max_line_length", type=common.positive_int, default=q.max_line_length)
    parser.add_argument("--max_digit_fraction", type=float, default=q.max_digit_fraction)
    parser.add_argument("--generated_scan_lines", type=common.non_negative_int, default=q.generated_scan_lines)


def add_read_flags(parser) -> None:
    """Flags of the read, row rules and quality filter (shared with the tokenizer pipeline)."""
    add_source_flags(parser)
    add_selection_flags(parser)


def build_parser():
    """Every flag of the pipeline (the Flex Template's parameters are generated from it)."""
    parser = common.ArgumentParser(prog="sluice multi", description=__doc__.split("\n\n")[0])
    add_read_flags(parser)
    parser.add_argument("--language_tags", action=argparse.BooleanOptionalAction, default=True,
                        help="Prepend each file's language-tag token, as CodeGen did (on by default).")
    return flags.add_corpus_flags(parser, near_dedup_default=True, decontamination=True)


def parse_args(argv):
    return flags.parse_built(build_parser(), argv)


def query_params(args) -> tuple[github_sql.QueryParams, frozenset]:
    unknown = [lang for lang in args.languages if lang not in github_sql.DEFAULT_EXTENSIONS]
    if unknown:
        raise common.UsageError(f"--languages: unknown {', '.join(unknown)} (known:"
                                f" {', '.join(github_sql.DEFAULT_EXTENSIONS)})")
    try:
        allowed = normalize_allow_list(args.licenses)
    except ValueError as err:
        raise common.UsageError(str(err)) from None
    if args.min_file_bytes > args.max_file_bytes:
        raise common.UsageError("--min_file_bytes: larger than --max_file_bytes")
    if not 0.0 < args.max_digit_fraction <= 1.0:
        raise common.UsageError("--max_digit_fraction: must be in (0, 1]")
    # licenses.license holds GitHub's keys: the lowercase SPDX ids ("mit", "apache-2.0").
    params = github_sql.QueryParams(
        languages=tuple(sorted(set(args.languages))), licenses=tuple(sorted(s.lower() for s in allowed)),
        min_bytes=args.min_file_bytes, max_bytes=args.max_file_bytes, min_stars=args.min_stars)
    return params, allowed


def source_mode(args) -> str:
    chosen = [name for name, value in (("snapshot", args.bigquery_snapshot), ("query", args.bigquery_project),
                                       ("export", args.bigquery_export)) if value]
    if len(chosen) != 1:
        raise common.UsageError("give exactly one of --bigquery_snapshot DIR, --bigquery_project PROJECT"
                                " or --bigquery_export GLOB")
    if chosen[0] == "query" and not args.bigquery_destination:
        raise common.UsageError("--bigquery_project: needs --bigquery_destination project.dataset.table")
    return chosen[0]


def stage_rows(args, mode: str, params: github_sql.QueryParams, stats_dir: str):
    """(the Beam read of the rows, the manifest's inputs section); runs the query where needed."""
    query = {"sql": github_sql.SQL_FILE, "sql_sha256": github_sql.sql_sha256(),
             "parameters": params.named(), "stars_table": args.stars_table}
    if mode == "snapshot":
        try:
            tables = github_sql.snapshot_tables(args.bigquery_snapshot)
            folder = common.join(stats_dir, "query")
            result = github_sql.export_snapshot_query(args.bigquery_snapshot, params, folder, args.stars_table)
        except ValueError as err:
            raise common.UsageError(f"--bigquery_snapshot: {err}") from None
        inputs = {"source": "snapshot", "snapshot": args.bigquery_snapshot,
                  "tables": {name: {k: v for k, v in t.items() if k != "path"} for name, t in tables.items()},
                  "query": {**query, "rows": result["rows"], "bytes": result["bytes"]}}
        return bigquery.read_files(common.join(folder, "part-*.parquet")), inputs
    if mode == "export":
        common.require_file(args.bigquery_export, "--bigquery_export")
        return bigquery.read_files(args.bigquery_export), {
            "source": "export", "pattern": args.bigquery_export, "query": query}
    live = bigquery.LiveQuery(
        project=args.bigquery_project, destination=args.bigquery_destination,
        dataset=args.bigquery_dataset, stars_table=args.stars_table, priority=args.bigquery_priority,
        timeout_s=args.bigquery_timeout_s, maximum_bytes_billed=args.bigquery_maximum_bytes_billed)
    try:
        job = bigquery.materialise_query(live, params)
    except ValueError as err:
        raise common.UsageError(f"--bigquery_project: {err}") from None
    return bigquery.read_table(live.destination, live.timeout_s), {
        "source": "bigquery", "project": live.project, "dataset": live.dataset, "query": {**query, **job}}


@dataclasses.dataclass(frozen=True)
class Selection:
    """What the source and selection flags choose, checked before any output is touched."""

    mode: str  # snapshot, query or export
    params: github_sql.QueryParams
    stars_table: str
    licenses: tuple  # the SPDX allow-list the row rules apply (normalize_allow_list)
    quality: QualityThresholds


def read_config(args) -> Selection:
    """The checked source and selection flags; a bad one is a UsageError."""
    mode = source_mode(args)
    if mode == "query" and common.RUN_MODE["mode"] != "run":
        # A template's publish step reruns this driver: it must not run (and bill) the query again.
        raise common.UsageError("--bigquery_project: a Flex Template run takes --bigquery_export (or"
                                " --bigquery_snapshot); run the live query from a driver that waits")
    params, allowed = query_params(args)
    try:  # a --stars_table that is not a plain table name fails here, before any work
        github_sql.render("duckdb" if mode == "snapshot" else "bigquery",
                          None if mode == "snapshot" else args.bigquery_dataset, args.stars_table)
    except ValueError as err:
        raise common.UsageError(f"--stars_table: {err}") from None
    quality = dataclasses.replace(
        QualityThresholds(), max_avg_line_length=args.max_avg_line_length,
        max_line_length=args.max_line_length, max_digit_fraction=args.max_digit_fraction,
        generated_scan_lines=args.generated_scan_lines)
    return Selection(mode=mode, params=params, stars_table=args.stars_table,
                     licenses=tuple(sorted(allowed)), quality=quality)


class CuratedRows(NamedTuple):
    documents: beam.PCollection
    rejects: list  # the reject PCollections of the row rules, quality filter and exact dedup
    row_ids: beam.PCollection  # (id, (language, bytes)) of every row read
    inputs: dict  # the manifest's inputs section (stage_rows)


def curate(pipeline, args, selection: Selection, stats_dir: str) -> CuratedRows:
    """Query (where needed), read, row rules, code quality and exact dedup: the curated documents."""
    read, inputs = stage_rows(args, selection.mode, selection.params, stats_dir)
    rows = pipeline | "ReadRows" >> read
    params = selection.params
    rules = RowRules(params.languages, frozenset(selection.licenses), params.min_bytes, params.max_bytes)
    documents, read_rejects, row_ids = rows | "ToDocuments" >> RowsToDocuments(rules)
    documents, quality_rejects = documents | "FilterQuality" >> FilterCodeQuality(selection.quality)
    documents, dedup_rejects = documents | "ExactDedup" >> ExactDedup()
    return CuratedRows(documents, [read_rejects, quality_rejects, dedup_rejects], row_ids, inputs)


def run_config(args, params, near_dedup, decontamination, quality) -> dict:
    return {**flags.stream_config(args), "query": params.named(), "stars_table": args.stars_table,
            "languages": list(params.languages), "language_tags": args.language_tags,
            "quality": dataclasses.asdict(quality),
            "near_dedup": dataclasses.asdict(near_dedup) if near_dedup else None,
            "decontamination": decontamination}


def main(argv=None):
    args, beam_args = parse_args(argv)
    selection = read_config(args)
    params, quality = selection.params, selection.quality
    near_dedup = flags.near_dedup_config(args)
    if near_dedup is not None:
        near_dedup = dataclasses.replace(near_dedup, per_language=True)
    decontamination = flags.decontamination_config(args)
    tokenizer, stats_dir, started = flags.start_run(args)

    pipeline = beam.Pipeline(options=common.pipeline_options(beam_args))
    curated = curate(pipeline, args, selection, stats_dir)
    row_ids = curated.row_ids
    documents, rejects = flags.clean_code(curated.documents, curated.rejects, decontamination, near_dedup)
    rejects = rejects | "AllRejects" >> beam.Flatten()
    documents | "WriteStreams" >> flags.packed_streams(
        args, tokenizer, common.join(stats_dir, "shards.json"), prefix_language_tag=args.language_tags,
        language_stats_path=common.join(stats_dir, "languages_kept.json"))
    (row_ids, rejects) | "LanguageStats" >> WriteLanguageStats(
        common.join(stats_dir, "languages_read.json"), common.join(stats_dir, "languages_rejects.json"))
    flags.write_side_outputs(args, documents, rejects)
    result = common.run_pipeline(pipeline)
    counts, shards, sections = flags.finished_run(result, near_dedup, stats_dir)
    sections["languages"] = languages_report(
        read_json(common.join(stats_dir, "languages_read.json")),
        read_json(common.join(stats_dir, "languages_kept.json")),
        read_json(common.join(stats_dir, "languages_rejects.json")), params.languages)
    return common.publish_manifest(
        args.output,
        dataset=DATASET,
        started=started,
        config=run_config(args, params, near_dedup, decontamination, quality),
        counts=counts,
        inputs=curated.inputs,
        shards=shards,
        **flags.stream_manifest_sections(args, tokenizer),
        **sections,
    )


def run(argv=None) -> int:
    return common.run_main(main, argv)


if __name__ == "__main__":
    raise SystemExit(run())
