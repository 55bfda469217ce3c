"""A Mono manifest built from BigQuery's github_repos dataset, so nobody types repositories in by hand.

    python -m pipelines.github_manifest --bigquery_snapshot DIR --output MANIFEST.jsonl \
        [--languages python] [--licenses mit,apache-2.0,...] [--min_stars N] [--stars_table sample_repos] \
        [--min_files N] [--max_repos N] [--seed S] [--allow_empty]
    ... --bigquery_project P [--bigquery_dataset bigquery-public-data.github_repos]   (live query)

One SQL file (transforms/sources/sql/github_repos_mono_manifest.sql) selects one row per repository
with an allowed GitHub license, enough stars and enough files of the languages, with the ref to
archive; each row becomes a line of the Mono manifest format with GitHub's archive URL at that ref,
sorted by repo name. ``MANIFEST.jsonl`` is written through a temporary name and a rename, then
``MANIFEST.jsonl.meta.json`` beside it (query sha256, parameters, inputs, counts, output sha256).
The rows come from one function per source (``snapshot_rows``, ``live_rows``), each returning the
rows and the meta file's ``inputs`` section.
"""

from __future__ import annotations

import itertools
import os
import re

from pipelines import flags
from pipelines.driver import ArgumentParser, UsageError, comma_list, non_negative_int, parse_command_args
from pipelines.driver import positive_int, run_main
from pipelines.manifests import file_sha256, sluice_info, utc_now
from pipelines.multi import allowed_licenses, checked_languages
from pipelines.versions import write_json_file
from transforms.filters.licenses import DEFAULT_ALLOWED
from transforms.sources import bigquery, github_manifest, github_sql
from transforms.streams.shard_writer import write_atomically

META_SUFFIX = ".meta.json"  # not .jsonl: a Mono --input glob '*.jsonl' never takes it for a manifest
LIVE_PAGE_ROWS = 10_000  # rows per page of the live result: the driver holds one page at a time
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def build_parser():
    parser = ArgumentParser(prog="sluice github_manifest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bigquery_snapshot",
                        help="Local folder with files/licenses/sample_repos .parquet: the SQL runs there,"
                             " transpiled to DuckDB.")
    flags.add_bigquery_flags(parser)
    parser.add_argument("--output", required=True,
                        help="The manifest to write (JSON Lines; local or any Beam filesystem); replaced"
                             " atomically, with OUTPUT.meta.json beside it.")
    parser.add_argument("--languages", type=comma_list, default=("python",),
                        help=f"Comma-separated languages whose files count ({', '.join(github_sql.DEFAULT_EXTENSIONS)}).")
    parser.add_argument("--licenses", type=comma_list, default=DEFAULT_ALLOWED,
                        help="Comma-separated allowed licenses (SPDX ids or GitHub keys), as Mono's --licenses.")
    parser.add_argument("--min_stars", type=non_negative_int, default=0)
    parser.add_argument("--stars_table", default=github_sql.STARS_PLACEHOLDER,
                        help="Table of (repo_name, watch_count): one of the dataset's, or project.dataset.table.")
    parser.add_argument("--min_files", type=positive_int, default=1,
                        help="Fewest files of the languages (no symbolic links) at the archived ref.")
    parser.add_argument("--max_repos", type=positive_int, default=None,
                        help="Keep this many repositories, chosen by --seed (the smallest sha256(seed:name)).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the --max_repos choice.")
    parser.add_argument("--allow_empty", action="store_true",
                        help="Write an empty manifest when nothing matches (otherwise a usage error).")
    return parser


def parse_args(argv):
    return parse_command_args(build_parser(), argv)


def source_mode(args) -> str:
    chosen = [name for name, value in (("snapshot", args.bigquery_snapshot), ("query", args.bigquery_project))
              if value]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --bigquery_snapshot DIR or --bigquery_project PROJECT")
    if chosen[0] == "snapshot" and args.bigquery_dry_run_only:
        raise UsageError("--bigquery_dry_run_only: only with --bigquery_project (a snapshot bills nothing)")
    return chosen[0]


def query_params(args) -> tuple[github_manifest.ManifestParams, frozenset]:
    """(the query's parameters, the SPDX allow-list Mono's license filter will apply)."""
    allowed = allowed_licenses(args.licenses)
    params = github_manifest.ManifestParams(
        languages=checked_languages(args.languages), licenses=github_sql.github_license_keys(allowed),
        min_stars=args.min_stars, min_files=args.min_files)
    return params, allowed


def output_path(path: str) -> str:
    """--output as a path ``write_atomically`` can place a temporary file beside (absolute if local)."""
    if path.endswith("/") or path.endswith(META_SUFFIX):
        raise UsageError(f"--output: {path} is not a manifest file name (want e.g. manifest.jsonl)")
    return path if _URL.match(path) else os.path.abspath(path)


def query_section(args, params: github_manifest.ManifestParams) -> dict:
    return {"sql": github_sql.MONO_MANIFEST.name, "sql_sha256": github_sql.MONO_MANIFEST.sha256(),
            "parameters": params.named(), "stars_table": args.stars_table}


def snapshot_rows(args, params: github_manifest.ManifestParams):
    """(the query's rows over the local snapshot, streamed; the meta file's inputs section)."""
    try:
        tables = github_sql.snapshot_tables(args.bigquery_snapshot, args.stars_table, github_sql.MONO_MANIFEST)
    except ValueError as err:
        raise UsageError(f"--bigquery_snapshot: {err}") from None
    inputs = {"source": "snapshot", "snapshot": args.bigquery_snapshot,
              "tables": {name: {k: v for k, v in t.items() if k != "path"} for name, t in tables.items()},
              "query": query_section(args, params)}
    return github_manifest.snapshot_rows(args.bigquery_snapshot, params, args.stars_table), inputs


def live_sql(args) -> str:
    """The manifest SQL for BigQuery over --bigquery_dataset and --stars_table (names as identifiers)."""
    try:
        return github_sql.render("bigquery", args.bigquery_dataset, args.stars_table, github_sql.MONO_MANIFEST)
    except ValueError as err:
        raise UsageError(f"--bigquery_dataset/--stars_table: {err}") from None


def live_rows(args, params: github_manifest.ManifestParams, client=None):
    """(the query's rows from BigQuery, streamed page by page; the meta file's inputs section).

    The query goes through ``bigquery.checked_query``: a dry run first (its estimate logged and
    recorded), refused past --bigquery_maximum_bytes_billed, which is set on the job too. It reads
    no ``contents``, so it bills a small fraction of the Multi query. ``client``: a
    ``bigquery.Client``, or None to connect with the default credentials.
    """
    live = flags.live_query(args, stars_table=args.stars_table)
    try:
        job, info = bigquery.checked_query(client or bigquery.connect(live), live, live_sql(args), params.named())
    except ValueError as err:
        raise flags.bigquery_error(err) from None
    inputs = {"source": "bigquery", "project": live.project, "dataset": live.dataset,
              "query": {**query_section(args, params), **info}}
    rows = (dict(row.items()) for row in job.result(timeout=live.timeout_s, page_size=LIVE_PAGE_ROWS))
    return rows, inputs


def check_inputs(args, source: str) -> None:
    """Table names and the snapshot's tables and columns, before any query runs."""
    if source != "snapshot":
        live_sql(args)
        return
    try:
        github_sql.render("duckdb", None, args.stars_table, github_sql.MONO_MANIFEST)
    except ValueError as err:
        raise UsageError(f"--stars_table: {err}") from None
    try:
        github_sql.check_snapshot(args.bigquery_snapshot, args.stars_table, github_sql.MONO_MANIFEST)
    except ValueError as err:
        raise UsageError(f"--bigquery_snapshot: {err}") from None


def nothing_matched(lines: github_manifest.ManifestLines) -> str:
    """Which stage removed everything, for the one-line error of an empty result."""
    if lines.rows_read == 0:
        stage = "the query returned no repository for these parameters"
    else:
        reasons = ", ".join(f"{reason} {s['count']}" for reason, s in lines.skipped.items())
        stage = f"all {lines.rows_read} repositories the query returned were skipped ({reasons})"
    return f"nothing to write: {stage}; --allow_empty writes an empty manifest"


def write_manifest(path: str, lines, allow_empty: bool, counts: github_manifest.ManifestLines) -> None:
    """Write the lines through a temporary name; an empty result is refused before anything is written."""
    first = next(lines, None)
    if first is None and not allow_empty:
        raise UsageError(nothing_matched(counts))
    stream = lines if first is None else itertools.chain([first], lines)

    def write(handle):
        for line in stream:
            handle.write(line)

    write_atomically(path, write)


def meta(args, inputs: dict, params, allowed, counts: github_manifest.ManifestLines, output: dict, started: str) -> dict:
    return {
        "kind": "github_manifest",
        "created": {"started": started, "finished": utc_now()},
        "sluice": sluice_info(),
        "inputs": inputs,
        "selection": {"languages": list(params.languages), "licenses": sorted(allowed),
                      "min_stars": args.min_stars, "min_files": args.min_files,
                      "max_repos": args.max_repos, "seed": args.seed},
        "counts": {"rows_read": counts.rows_read, "eligible": counts.eligible,
                   "repos_written": counts.written, "skipped": counts.skipped},
        "output": output,
    }


def main(argv=None, bigquery_client=None):
    """``bigquery_client``: the client the live path sends its query with (None: connect)."""
    args = parse_args(argv)
    source = source_mode(args)
    params, allowed = query_params(args)
    path = output_path(args.output)
    check_inputs(args, source)
    started = utc_now()
    if source == "snapshot":
        rows, inputs = snapshot_rows(args, params)
    else:
        rows, inputs = live_rows(args, params, bigquery_client)
    counts = github_manifest.ManifestLines(allowed, args.max_repos, args.seed, manifest_path=path)
    write_manifest(path, counts(rows), args.allow_empty, counts)
    output = file_sha256(path)
    write_json_file(path + META_SUFFIX, meta(args, inputs, params, allowed, counts, output, started))
    skipped = sum(s["count"] for s in counts.skipped.values())
    print(f"wrote {counts.written} repositories to {path} ({counts.rows_read} rows read, {skipped} skipped,"
          f" sha256 {output['sha256'][:12]}); {path + META_SUFFIX}")


def run(argv=None, **context) -> int:
    return run_main(main, argv, **context)


if __name__ == "__main__":
    raise SystemExit(run())
