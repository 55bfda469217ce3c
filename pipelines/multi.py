"""The Multi corpus: GitHub files in six languages, selected by one SQL query, to packed streams.

    python -m pipelines.multi --bigquery_snapshot DIR --output DIR --tokenizer MODEL.model \
        [--languages c,cpp,go,java,javascript,python] [--licenses ...] [--min_stars N] \
        [--stars_table sample_repos] [--min_file_bytes N] [--max_file_bytes N] \
        [--no-language_tags] [stream, decontamination and near-dedup flags] [any Beam option]
    ... --bigquery_project P --bigquery_destination P.D.T    (live query, Dataflow)
    ... --bigquery_project P --bigquery_export_to 'gs://BUCKET/multi/*.parquet'  (EXPORT DATA, then read)
    ... --bigquery_project P ... --bigquery_dry_run_only   (print the bytes it would bill, exit 0)
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
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines import fingerprints, flags
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
    flags.add_bigquery_flags(parser)
    parser.add_argument("--bigquery_destination",
                        help="project.dataset.table the live query's result is written to (overwritten).")
    parser.add_argument("--bigquery_export_to",
                        help="With --bigquery_project: EXPORT DATA the query to these Parquet files"
                             " (gs://BUCKET/PATH/*.parquet, overwritten), then read them.")
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


def checked_languages(languages) -> tuple:
    """--languages, sorted and unique; a language without extensions is a UsageError."""
    unknown = [lang for lang in languages if lang not in github_sql.DEFAULT_EXTENSIONS]
    if unknown:
        raise UsageError(f"--languages: unknown {', '.join(unknown)} (known:"
                                f" {', '.join(github_sql.DEFAULT_EXTENSIONS)})")
    return tuple(sorted(set(languages)))


def allowed_licenses(licenses) -> frozenset:
    """--licenses in SPDX form; an unknown key is a UsageError."""
    try:
        return normalize_allow_list(licenses)
    except ValueError as err:
        raise UsageError(str(err)) from None


def query_params(args) -> tuple[github_sql.QueryParams, frozenset]:
    languages = checked_languages(args.languages)
    allowed = allowed_licenses(args.licenses)
    if args.min_file_bytes > args.max_file_bytes:
        raise UsageError("--min_file_bytes: larger than --max_file_bytes")
    # licenses.license holds GitHub's keys: mostly the lowercase SPDX ids ("mit", "apache-2.0"), but
    # "gpl-3.0" for GPL-3.0-only (github_license_keys maps every allowed id to its keys).
    params = github_sql.QueryParams(
        languages=languages, licenses=github_sql.github_license_keys(allowed),
        min_bytes=args.min_file_bytes, max_bytes=args.max_file_bytes, min_stars=args.min_stars)
    return params, allowed


def source_mode(args) -> str:
    """snapshot, query (live: into --bigquery_destination, or exported to --bigquery_export_to) or export."""
    chosen = [name for name, value in (("snapshot", args.bigquery_snapshot), ("query", args.bigquery_project),
                                       ("export", args.bigquery_export)) if value]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --bigquery_snapshot DIR, --bigquery_project PROJECT"
                                " or --bigquery_export GLOB")
    if chosen[0] != "query":
        for flag in ("bigquery_destination", "bigquery_export_to", "bigquery_dry_run_only"):
            if getattr(args, flag):
                raise UsageError(f"--{flag}: only with --bigquery_project (a live query); this run reads"
                                 f" --bigquery_{chosen[0]}")
        return chosen[0]
    if bool(args.bigquery_destination) == bool(args.bigquery_export_to):
        raise UsageError("--bigquery_project: needs one of --bigquery_destination project.dataset.table"
                         " or --bigquery_export_to gs://BUCKET/PATH/*.parquet")
    if args.bigquery_export_to:
        try:
            bigquery.check_export_uri(args.bigquery_export_to)
        except ValueError as err:
            raise UsageError(f"--bigquery_export_to: {err}") from None
    return "query"


def live_rows(args, params: github_sql.QueryParams, client=None):
    """The live query (``bigquery.checked_query``: dry run, cap, then the job): the Beam read of
    its rows and the manifest's inputs section. ``client``: a ``bigquery.Client``, or None to
    connect with the default credentials."""
    live = flags.live_query(args, args.bigquery_destination, args.stars_table)
    started = time.time()
    try:
        job = bigquery.materialise_query(client or bigquery.connect(live), live, params,
                                         export_to=args.bigquery_export_to)
    except ValueError as err:
        raise flags.bigquery_error(err) from None
    inputs = {"source": "bigquery", "project": live.project, "dataset": live.dataset}
    if args.bigquery_export_to:  # read exactly like --bigquery_export, once the files are this export's
        try:
            job["files"] = bigquery.check_export_files(args.bigquery_export_to, started)
        except ValueError as err:
            raise UsageError(f"--bigquery_export_to: {err}") from None
        read = bigquery.read_files(args.bigquery_export_to)
        inputs["pattern"] = args.bigquery_export_to
    else:
        read = bigquery.read_table(live.destination, live.timeout_s)
    return read, inputs, job


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


def stage_rows(args, mode: str, params: github_sql.QueryParams, stats_dir: str, client=None):
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
    read, inputs, job = live_rows(args, params, client)
    return read, {**inputs, "query": {**query, **job}}


def stop_if_dry_run_only(args, selection: Selection, client=None) -> None:
    """--bigquery_dry_run_only: the live query's dry run, before the version is claimed or any
    graph is built; it ends in DryRunOnly (printed, exit 0) or a one-line refusal."""
    if selection.mode == "query" and args.bigquery_dry_run_only:
        live_rows(args, selection.params, client)
        raise AssertionError("a dry run only never runs the query")  # checked_query raised DryRunOnly


def read_config(args, mode: RunMode = RUN) -> Selection:
    """The checked source and selection flags; a bad one is a UsageError."""
    source = source_mode(args)
    if source == "query" and mode.mode != "run":
        # A template's publish step reruns this driver: it must not run (and bill) the query or the
        # export again; and a launcher must not wait for a query of hours (launches time out).
        raise UsageError("--bigquery_project: a Flex Template run takes --bigquery_export (or"
                         " --bigquery_snapshot); run the live query or --bigquery_export_to from a"
                         " driver that waits")
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


def curate(pipeline, args, selection: Selection, stats_dir: str, client=None) -> tuple[CuratedRows, dict]:
    """Run the query where needed, then read and curate its rows: (the curated rows, the
    manifest's inputs section). ``client``: the live path's ``bigquery.Client`` (None: connect)."""
    read, inputs = stage_rows(args, selection.mode, selection.params, stats_dir, client)
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


def run_fingerprints(args, selection: Selection, config: dict, decontamination) -> fingerprints.Fingerprints:
    """The config without paths; the query's rows (snapshot tables, export files; a live query
    always counts as changed) and extra benchmarks as inputs."""
    inputs = {**fingerprints.multi_inputs(args, selection.mode),
              "benchmarks": fingerprints.benchmark_inputs(decontamination)}
    return fingerprints.fingerprints(DATASET, config, inputs, config["tokenizer"],
                                     drop=("tokenizer", "decontamination.extra_paths"))


def languages_section(corpus: CorpusRun, languages) -> dict:
    """Per language: rows read, documents and tokens kept, rejects per stage and reason."""
    read, kept, rejects = (read_json(corpus.stats_path(f"languages_{part}.json"))
                           for part in ("read", "kept", "rejects"))
    return languages_report(read, kept, rejects, languages)


def main(argv=None, mode=RUN, bigquery_client=None):
    """``bigquery_client``: the client the live path sends its queries with (None: connect with
    the default credentials)."""
    args, beam_args = parse_args(argv)
    selection = read_config(args, mode)
    stop_if_dry_run_only(args, selection, bigquery_client)
    near_dedup = flags.near_dedup_config(args)
    if near_dedup is not None:
        near_dedup = dataclasses.replace(near_dedup, per_language=True)
    decontamination = flags.decontamination_config(args)
    config = run_config(args, selection, near_dedup, decontamination)
    found = run_fingerprints(args, selection, config, decontamination)
    fingerprints.gate(args, args.output, found, mode)
    with CorpusRun(DATASET, args, beam_args, mode, STAGE_FLAGS, found) as corpus:
        curated, inputs = curate(corpus.pipeline, args, selection, corpus.run.stats_dir, bigquery_client)
        documents, rejects = corpus.clean(curated.documents, curated.rejects, decontamination, near_dedup)
        rejects = rejects | "AllRejects" >> beam.Flatten()
        corpus.write(documents, rejects, prefix_language_tag=args.language_tags,
                     language_stats_path=corpus.stats_path("languages_kept.json"))
        (curated.row_ids, rejects) | "LanguageStats" >> WriteLanguageStats(
            corpus.stats_path("languages_read.json"), corpus.stats_path("languages_rejects.json"))
        counts, shards, sections = corpus.execute()
        sections["languages"] = languages_section(corpus, selection.params.languages)
        return corpus.publish(config=config, counts=counts, inputs=inputs, shards=shards, **sections)


def run(argv=None, mode=RUN) -> int:
    return run_main(main, argv, mode=mode)


if __name__ == "__main__":
    raise SystemExit(run())
