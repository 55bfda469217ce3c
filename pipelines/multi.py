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

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines import flags
from pipelines.corpus import CorpusRun
from pipelines.driver import ArgumentParser, UsageError, comma_list, non_negative_int, positive_int, require_file
from pipelines.driver import run_main
from pipelines.run import RUN, RunMode
from schemas.files import join
from transforms.curation.multi import CuratedRows, CurateMultiRows, Selection
from transforms.filters.licenses import DEFAULT_ALLOWED, normalize_allow_list
from transforms.sources import bigquery, github_sql
from transforms.stats.language_stats import WriteLanguageStats, languages_report
from transforms.stats.run_stats import read_json

DATASET = "multi"
# The flags that set each stage, named when a stage removes everything (CorpusRun.publish).
_SELECTION_FLAGS = ("languages", "licenses", "min_stars", "min_file_bytes", "max_file_bytes")
STAGE_FLAGS = (("input", _SELECTION_FLAGS), ("read", _SELECTION_FLAGS), ("quality", flags.QUALITY_FLAGS))


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
    parser.add_argument("--bigquery_timeout_s", type=positive_int, default=3600,
                        help="Timeout of every BigQuery client call (live query).")
    parser.add_argument("--bigquery_maximum_bytes_billed", type=positive_int, default=None,
                        help="The live query fails rather than bill more bytes than this.")
    parser.add_argument("--bigquery_export",
                        help="Parquet or Avro files of an EXPORT DATA of the query (any Beam filesystem glob).")


def add_selection_flags(parser) -> None:
    parser.add_argument("--languages", type=comma_list, default=tuple(github_sql.DEFAULT_EXTENSIONS),
                        help=f"Comma-separated languages ({', '.join(github_sql.DEFAULT_EXTENSIONS)}).")
    parser.add_argument("--licenses", type=comma_list, default=DEFAULT_ALLOWED,
                        help="Comma-separated allowed licenses (SPDX ids or GitHub keys).")
    parser.add_argument("--min_stars", type=non_negative_int, default=0)
    parser.add_argument("--stars_table", default=github_sql.STARS_PLACEHOLDER,
                        help="Table of (repo_name, watch_count): one of the dataset's, or"
                             " project.dataset.table.")
    parser.add_argument("--min_file_bytes", type=non_negative_int, default=1)
    parser.add_argument("--max_file_bytes", type=positive_int, default=1 << 20)
    flags.add_quality_flags(parser)


def add_read_flags(parser) -> None:
    """Flags of the read, row rules and quality filter (shared with the tokenizer pipeline)."""
    add_source_flags(parser)
    add_selection_flags(parser)


def build_parser():
    """Every flag of the pipeline (the Flex Template's parameters are generated from it)."""
    parser = ArgumentParser(prog="sluice multi", description=__doc__.split("\n\n")[0])
    add_read_flags(parser)
    parser.add_argument("--language_tags", action=argparse.BooleanOptionalAction, default=True,
                        help="Prepend each file's language-tag token, as CodeGen did (on by default).")
    return flags.add_corpus_flags(parser, near_dedup_default=True, decontamination=True)


def parse_args(argv):
    return flags.parse_built(build_parser(), argv)


def query_params(args) -> tuple[github_sql.QueryParams, frozenset]:
    unknown = [lang for lang in args.languages if lang not in github_sql.DEFAULT_EXTENSIONS]
    if unknown:
        raise UsageError(f"--languages: unknown {', '.join(unknown)} (known:"
                                f" {', '.join(github_sql.DEFAULT_EXTENSIONS)})")
    try:
        allowed = normalize_allow_list(args.licenses)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.min_file_bytes > args.max_file_bytes:
        raise UsageError("--min_file_bytes: larger than --max_file_bytes")
    # licenses.license holds GitHub's keys: the lowercase SPDX ids ("mit", "apache-2.0").
    params = github_sql.QueryParams(
        languages=tuple(sorted(set(args.languages))), licenses=tuple(sorted(s.lower() for s in allowed)),
        min_bytes=args.min_file_bytes, max_bytes=args.max_file_bytes, min_stars=args.min_stars)
    return params, allowed


def source_mode(args) -> str:
    chosen = [name for name, value in (("snapshot", args.bigquery_snapshot), ("query", args.bigquery_project),
                                       ("export", args.bigquery_export)) if value]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --bigquery_snapshot DIR, --bigquery_project PROJECT"
                                " or --bigquery_export GLOB")
    if chosen[0] == "query" and not args.bigquery_destination:
        raise UsageError("--bigquery_project: needs --bigquery_destination project.dataset.table")
    return chosen[0]


# The columns the row rules read from an export; a file without one would reject every row.
EXPORT_COLUMNS = ("repo_name", "path", "language", "license", "content")
STARS_COLUMN = "stars"


def check_export(pattern: str, params: github_sql.QueryParams) -> None:
    """Every file the export glob matches holds the columns the row rules read (``stars`` too under
    --min_stars > 0: a rule the rows cannot carry the data for is refused, never passed), from the
    files' footers or headers only, before any work."""
    require_file(pattern, "--bigquery_export")
    wanted = EXPORT_COLUMNS + ((STARS_COLUMN,) if params.min_stars > 0 else ())
    try:
        files = bigquery.export_columns(pattern)
    except ValueError as err:
        raise UsageError(f"--bigquery_export: {err}") from None
    for path, columns in files:
        missing = [c for c in wanted if c not in columns]
        if missing == [STARS_COLUMN]:
            raise UsageError(f"--bigquery_export: {path} has no {STARS_COLUMN} column, so --min_stars"
                             f" {params.min_stars} cannot be applied (export the query's {STARS_COLUMN}"
                             " column, or run with --min_stars 0)")
        if missing:
            raise UsageError(f"--bigquery_export: {path} has no {', '.join(missing)} column (an export"
                             f" of the Multi query holds {', '.join(github_sql.RESULT_SCHEMA.names)})")


def stage_rows(args, mode: str, params: github_sql.QueryParams, stats_dir: str):
    """(the Beam read of the rows, the manifest's inputs section); runs the query where needed.

    The inputs record what this run did: on the export path no query ran (the rows are the
    export's, and their stars its column, whatever stars table made them), so there is no query
    section; the selection the row rules applied is the config's ``query``."""
    query = {"sql": github_sql.SQL_FILE, "sql_sha256": github_sql.sql_sha256(),
             "parameters": params.named(), "stars_table": args.stars_table}
    if mode == "snapshot":
        try:
            tables = github_sql.snapshot_tables(args.bigquery_snapshot, args.stars_table)
            folder = join(stats_dir, "query")
            result = github_sql.export_snapshot_query(args.bigquery_snapshot, params, folder, args.stars_table)
        except ValueError as err:
            raise UsageError(f"--bigquery_snapshot: {err}") from None
        inputs = {"source": "snapshot", "snapshot": args.bigquery_snapshot,
                  "tables": {name: {k: v for k, v in t.items() if k != "path"} for name, t in tables.items()},
                  "query": {**query, "rows": result["rows"], "bytes": result["bytes"]}}
        return bigquery.read_files(join(folder, "part-*.parquet")), inputs
    if mode == "export":
        return bigquery.read_files(args.bigquery_export), {
            "source": "export", "pattern": args.bigquery_export,
            "files": len(FileSystems.match([args.bigquery_export])[0].metadata_list)}
    live = bigquery.LiveQuery(
        project=args.bigquery_project, destination=args.bigquery_destination,
        dataset=args.bigquery_dataset, stars_table=args.stars_table, priority=args.bigquery_priority,
        timeout_s=args.bigquery_timeout_s, maximum_bytes_billed=args.bigquery_maximum_bytes_billed)
    try:
        job = bigquery.materialise_query(live, params)
    except ValueError as err:
        raise UsageError(f"--bigquery_project: {err}") from None
    return bigquery.read_table(live.destination, live.timeout_s), {
        "source": "bigquery", "project": live.project, "dataset": live.dataset, "query": {**query, **job}}


def read_config(args, mode: RunMode = RUN) -> Selection:
    """The checked source and selection flags; a bad one is a UsageError."""
    source = source_mode(args)
    if source == "query" and mode.mode != "run":
        # A template's publish step reruns this driver: it must not run (and bill) the query again.
        raise UsageError("--bigquery_project: a Flex Template run takes --bigquery_export (or"
                         " --bigquery_snapshot); run the live query from a driver that waits")
    params, allowed = query_params(args)
    quality = flags.quality_thresholds(args)
    if source == "export" and args.stars_table != github_sql.STARS_PLACEHOLDER:
        raise UsageError("--stars_table: not applied to --bigquery_export rows (their stars column is"
                         " used); drop it, or give --bigquery_snapshot or --bigquery_project")
    try:  # a --stars_table that is not a plain table name fails here, before any work
        github_sql.render("duckdb" if source == "snapshot" else "bigquery",
                          None if source == "snapshot" else args.bigquery_dataset, args.stars_table)
    except ValueError as err:
        raise UsageError(f"--stars_table: {err}") from None
    if source == "snapshot":
        try:  # a missing table or a column of the wrong type: one line, before any output is touched
            github_sql.check_snapshot(args.bigquery_snapshot, args.stars_table)
        except ValueError as err:  # pyarrow's ArrowInvalid (not Parquet) is a ValueError too
            raise UsageError(f"--bigquery_snapshot: {err}") from None
    if source == "export":
        check_export(args.bigquery_export, params)
    # The stars table applies where the query runs; an export's rows bring their own stars.
    return Selection(mode=source, params=params, stars_table=None if source == "export" else args.stars_table,
                     licenses=tuple(sorted(allowed)), quality=quality)


def curate(pipeline, args, selection: Selection, stats_dir: str) -> tuple[CuratedRows, dict]:
    """Run the query where needed, then read and curate its rows: (the curated rows, the
    manifest's inputs section)."""
    read, inputs = stage_rows(args, selection.mode, selection.params, stats_dir)
    return pipeline | "Curate" >> CurateMultiRows(read, selection), inputs


def run_config(args, selection: Selection, near_dedup, decontamination) -> dict:
    """The config recorded in the manifest: only what this run applied. ``query`` holds the
    selection's values, applied by the query (snapshot, live) and again by the row rules (every
    path); ``stars_table`` is null on the export path, where no query ran."""
    params = selection.params
    return {**flags.stream_config(args), "query": params.named(), "stars_table": selection.stars_table,
            "languages": list(params.languages), "language_tags": args.language_tags,
            "quality": dataclasses.asdict(selection.quality),
            "near_dedup": dataclasses.asdict(near_dedup) if near_dedup else None,
            "decontamination": decontamination}


def languages_section(corpus: CorpusRun, languages) -> dict:
    """Per language: rows read, documents and tokens kept, rejects per stage and reason."""
    read, kept, rejects = (read_json(corpus.stats_path(f"languages_{part}.json"))
                           for part in ("read", "kept", "rejects"))
    return languages_report(read, kept, rejects, languages)


def main(argv=None, mode=RUN):
    args, beam_args = parse_args(argv)
    selection = read_config(args, mode)
    near_dedup = flags.near_dedup_config(args)
    if near_dedup is not None:
        near_dedup = dataclasses.replace(near_dedup, per_language=True)
    decontamination = flags.decontamination_config(args)
    with CorpusRun(DATASET, args, beam_args, mode, STAGE_FLAGS) as corpus:
        curated, inputs = curate(corpus.pipeline, args, selection, corpus.run.stats_dir)
        documents, rejects = corpus.clean(curated.documents, curated.rejects, decontamination, near_dedup)
        rejects = rejects | "AllRejects" >> beam.Flatten()
        corpus.write(documents, rejects, prefix_language_tag=args.language_tags,
                     language_stats_path=corpus.stats_path("languages_kept.json"))
        (curated.row_ids, rejects) | "LanguageStats" >> WriteLanguageStats(
            corpus.stats_path("languages_read.json"), corpus.stats_path("languages_rejects.json"))
        counts, shards, sections = corpus.execute()
        sections["languages"] = languages_section(corpus, selection.params.languages)
        return corpus.publish(
            config=run_config(args, selection, near_dedup, decontamination),
            counts=counts, inputs=inputs, shards=shards, **sections)


def run(argv=None, mode=RUN) -> int:
    return run_main(main, argv, mode=mode)


if __name__ == "__main__":
    raise SystemExit(run())
