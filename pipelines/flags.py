"""Flag groups the pipelines share, each with the checked config it gives.

Mono, NL and Multi take the same stream flags (tokenizer, packing, shuffle, side outputs), the same
near-dedup flags (on by default for Mono, off for NL) and, for code, the same quality and
decontamination flags, so each is spelt, checked and recorded in the manifest one way.
"""

from __future__ import annotations

import argparse
import dataclasses

from pipelines.driver import UsageError, comma_list, non_negative_int, parse_pipeline_args, positive_int
from pipelines.driver import require_file
from transforms.decontamination import BENCHMARKS, DEFAULT_MIN_COVERAGE, Decontaminate
from transforms.decontamination import DEFAULT_NGRAM as DECONTAMINATION_NGRAM
from transforms.dedup.near import VERIFY_MODES, NearDedupConfig
from transforms.filters.quality import QualityThresholds
from transforms.sources import bigquery, github_sql
from transforms.streams.packing import TAIL_MODES
from schemas import dataset_version
from schemas.files import join
from transforms.streams.tokenize import load_tokenizer

MAX_SHARDS = 99999  # shard names carry five digits


def add_bigquery_flags(parser) -> None:
    """The flags of every query Sluice sends live to BigQuery (``bigquery.checked_query``): the
    project billed, the dataset read, priority, timeout and the cost cap, and a dry run only."""
    parser.add_argument("--bigquery_project", help="Run the SQL live on BigQuery, billed to this project.")
    parser.add_argument("--bigquery_dataset", default=github_sql.LIVE_DATASET,
                        help="Dataset holding the github_repos tables (live query).")
    parser.add_argument("--bigquery_priority", choices=("BATCH", "INTERACTIVE"), default="BATCH")
    parser.add_argument("--bigquery_timeout_s", type=positive_int, default=3600,
                        help="Timeout of every BigQuery client call (live query).")
    parser.add_argument("--bigquery_maximum_bytes_billed", type=positive_int,
                        default=bigquery.DEFAULT_MAXIMUM_BYTES_BILLED,
                        help="A live query whose dry run estimates more bytes than this is refused; the"
                             " job itself fails rather than bill more (5 TB: ~$28 on demand).")
    parser.add_argument("--bigquery_dry_run_only", action="store_true",
                        help="Dry-run the live query, print the bytes it would bill (one JSON line) and"
                             " exit 0: nothing is run, claimed or published.")


def live_query(args, destination: str | None = None,
               stars_table: str = github_sql.STARS_PLACEHOLDER) -> bigquery.LiveQuery:
    """The LiveQuery of the --bigquery_* flags (``add_bigquery_flags``)."""
    return bigquery.LiveQuery(
        project=args.bigquery_project, destination=destination, dataset=args.bigquery_dataset,
        stars_table=stars_table, priority=args.bigquery_priority, timeout_s=args.bigquery_timeout_s,
        maximum_bytes_billed=args.bigquery_maximum_bytes_billed, dry_run_only=args.bigquery_dry_run_only)


def bigquery_error(err: ValueError) -> UsageError:
    """A ValueError of ``bigquery.connect`` / ``checked_query`` as the one line naming its flag."""
    flag = "--bigquery_maximum_bytes_billed" if isinstance(err, bigquery.OverCap) else "--bigquery_project"
    return UsageError(f"{flag}: {err}")


def add_stream_flags(parser) -> None:
    """--output, --tokenizer and the tokenize/shuffle/pack flags."""
    parser.add_argument("--output", required=True,
                        help="The dataset version to publish, ROOT/DATASET/VERSION (any Beam filesystem);"
                             " a published version is never overwritten.")
    parser.add_argument("--tokenizer", required=True,
                        help="The tokenizer: a version of pipelines.tokenizer (ROOT/tokenizer/VERSION), an alias"
                             " of one (ROOT/tokenizer/@ALIAS), or its tokenizer.model file.")
    parser.add_argument("--seq_len", type=positive_int, default=2048)
    parser.add_argument("--num_shards", type=positive_int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the global shuffle.")
    parser.add_argument("--pack_tail", choices=TAIL_MODES, default="drop",
                        help="The tokens that do not fill a last sequence: drop, or pad with a loss mask.")


def add_allow_empty_flag(parser) -> None:
    parser.add_argument("--allow_empty", action="store_true",
                        help="Publish a version with no documents; without it such a run fails, naming the"
                             " stage that removed everything, and publishes nothing.")


def add_if_changed_flag(parser) -> None:
    """--if_changed, which every publishing pipeline takes (pipelines/fingerprints.py)."""
    parser.add_argument("--if_changed", action="store_true",
                        help="Publish nothing, and exit 0 with one line naming it, when the newest published"
                             " version of ROOT/DATASET has the same config and input fingerprints.")


def add_side_output_flags(parser) -> None:
    parser.add_argument("--write_documents", action="store_true", help="Write curated documents as Parquet.")
    parser.add_argument("--write_rejects", action="store_true", help="Write every reject as Parquet.")


def check_stream_flags(args) -> None:
    if args.num_shards > MAX_SHARDS:
        raise UsageError(f"--num_shards: at most {MAX_SHARDS}")


def tokenizer_model(path: str) -> str:
    """The model file ``--tokenizer`` names: a tokenizer version folder's (``ROOT/tokenizer/VERSION``
    or an alias ``ROOT/tokenizer/@ALIAS``, resolved now) ``tokenizer.model``, or ``path`` itself
    (a model file, or a path that is neither, which loading then names). The version is resolved
    here, once, so the config, the manifest's tokenizer section and its lineage name the version,
    never the alias, and stay true after the alias moves."""
    from pipelines.tokenizer import MODEL_NAME  # the tokenizer pipeline imports these flags

    try:
        folder = dataset_version.resolve(path)
        manifest = dataset_version.read_manifest(folder)
    except dataset_version.MISSING:
        return path
    except dataset_version.DatasetError as err:
        raise UsageError(f"--tokenizer: {err}") from None
    if manifest["dataset"] != "tokenizer":
        raise UsageError(f"--tokenizer: {folder} is a {manifest['dataset']!r} version, not a tokenizer version")
    return join(folder.rstrip("/"), MODEL_NAME)


def stream_tokenizer(args):
    """The --tokenizer model, or a one-line usage error. ``args.tokenizer`` becomes the model file
    it names (``tokenizer_model``), which the job and the manifest then use."""
    args.tokenizer = tokenizer_model(args.tokenizer)
    require_file(args.tokenizer, "--tokenizer")
    try:
        return load_tokenizer(args.tokenizer)
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"--tokenizer: {args.tokenizer} is not a Sluice tokenizer ({err})") from None


def stream_config(args) -> dict:
    """The stream flags that change the output, for the manifest's config (the tokenizer as the
    model file it names, whether or not ``stream_tokenizer`` has resolved it yet)."""
    return {"tokenizer": tokenizer_model(args.tokenizer), "seq_len": args.seq_len, "num_shards": args.num_shards,
            "seed": args.seed, "pack_tail": args.pack_tail}


def add_near_dedup_flags(parser, default: bool = True) -> None:
    d = NearDedupConfig()
    state = ("on by default; --no-near_dedup turns it off" if default
             else "off by default; --near_dedup turns it on")
    parser.add_argument("--near_dedup", action=argparse.BooleanOptionalAction, default=default,
                        help=f"MinHash near-dedup ({state}).")
    parser.add_argument("--dedup_threshold", type=float, default=d.threshold,
                        help="Jaccard similarity at which two documents are near-duplicates.")
    parser.add_argument("--num_perm", type=positive_int, default=d.num_perm,
                        help="MinHash permutations; LSH bands and rows follow from it and the threshold.")
    parser.add_argument("--dedup_ngram", type=positive_int, default=d.ngram, help="Words per shingle.")
    parser.add_argument("--dedup_seed", type=int, default=d.seed, help="MinHash seed (datasketch's).")
    parser.add_argument("--dedup_verify", choices=VERIFY_MODES, default=d.verify,
                        help="Check LSH candidates by signature Jaccard, exact shingle Jaccard, or not at all.")
    parser.add_argument("--lsh_false_negative_weight", type=float, default=d.lsh_false_negative_weight,
                        help="Weight of false negatives when datasketch picks LSH bands and rows.")
    parser.add_argument("--cc_rounds", type=positive_int, default=d.cc_rounds,
                        help="Rounds of the distributed connected components (a run that needed more fails).")
    parser.add_argument("--lsh_shards", type=positive_int, default=d.lsh_shards,
                        help="LSH shards; a shard's worker sorts documents x bands / shards band keys in memory "
                             "(~100 bytes each): raise it in proportion past ~250 million documents.")


def near_dedup_config(args) -> NearDedupConfig | None:
    if not args.near_dedup:
        return None
    if not 0.0 < args.dedup_threshold <= 1.0:
        raise UsageError("--dedup_threshold: must be in (0, 1]")
    if not 0.0 < args.lsh_false_negative_weight < 1.0:
        raise UsageError("--lsh_false_negative_weight: must be in (0, 1)")
    return NearDedupConfig(
        threshold=args.dedup_threshold, num_perm=args.num_perm, ngram=args.dedup_ngram,
        seed=args.dedup_seed, verify=args.dedup_verify, cc_rounds=args.cc_rounds, lsh_shards=args.lsh_shards,
        lsh_false_negative_weight=args.lsh_false_negative_weight,
    )


def add_decontamination_flags(parser) -> None:
    parser.add_argument("--decontaminate", action=argparse.BooleanOptionalAction, default=True,
                        help="Remove documents containing an evaluation benchmark's problems (on by default).")
    parser.add_argument("--benchmarks", type=comma_list, default=BENCHMARKS,
                        help="Built-in benchmarks to decontaminate against (humaneval, mtpb).")
    parser.add_argument("--benchmark_jsonl", action="append", default=[],
                        help="Extra benchmark texts, JSONL of {id, text} (repeatable; any Beam filesystem).")
    parser.add_argument("--decontamination_ngram", type=positive_int, default=DECONTAMINATION_NGRAM)
    parser.add_argument("--decontamination_min_coverage", type=float, default=DEFAULT_MIN_COVERAGE,
                        help="Share of a benchmark item's n-grams a document must hold to be contaminated.")


def decontamination_config(args) -> dict | None:
    if not args.decontaminate:
        return None
    for path in args.benchmark_jsonl:
        require_file(path, "--benchmark_jsonl")
    config = {"benchmarks": list(args.benchmarks), "extra_paths": list(args.benchmark_jsonl),
              "ngram": args.decontamination_ngram, "min_coverage": args.decontamination_min_coverage}
    try:
        Decontaminate(**config)
    except ValueError as err:
        raise UsageError(f"--benchmarks/--decontamination_*: {err}") from None
    return config


def add_quality_flags(parser) -> None:
    """The code-quality thresholds (CodeGen's and Codex's filters), for Mono and Multi."""
    q = QualityThresholds()
    parser.add_argument("--max_avg_line_length", type=float, default=q.max_avg_line_length)
    parser.add_argument("--max_line_length", type=positive_int, default=q.max_line_length)
    parser.add_argument("--max_digit_fraction", type=float, default=q.max_digit_fraction)
    parser.add_argument("--generated_scan_lines", type=non_negative_int, default=q.generated_scan_lines)


QUALITY_FLAGS = ("max_avg_line_length", "max_line_length", "max_digit_fraction", "generated_scan_lines")


def quality_thresholds(args) -> QualityThresholds:
    if not 0.0 < args.max_digit_fraction <= 1.0:
        raise UsageError("--max_digit_fraction: must be in (0, 1]")
    return dataclasses.replace(
        QualityThresholds(), max_avg_line_length=args.max_avg_line_length,
        max_line_length=args.max_line_length, max_digit_fraction=args.max_digit_fraction,
        generated_scan_lines=args.generated_scan_lines)


def add_corpus_flags(parser, *, near_dedup_default: bool, decontamination: bool):
    """Add the flag groups every corpus pipeline shares after its own read flags; returns the parser
    (each pipeline's ``build_parser``, which the Flex Template metadata is generated from)."""
    add_stream_flags(parser)
    if decontamination:
        add_decontamination_flags(parser)
    add_near_dedup_flags(parser, default=near_dedup_default)
    add_side_output_flags(parser)
    add_allow_empty_flag(parser)
    add_if_changed_flag(parser)
    return parser


def parse_built(parser, argv):
    """Parse with a parser from ``add_corpus_flags``: (args, the remaining flags for Beam)."""
    args, beam_args = parse_pipeline_args(parser, argv)
    check_stream_flags(args)
    return args, beam_args
