"""Flag groups every corpus pipeline shares, and what the driver builds from them.

Mono, NL and Multi take the same stream flags (tokenizer, packing, shuffle, side outputs) and the same
near-dedup flags (on by default for Mono, off for NL), so both spell and check them one way and
record them in the manifest one way.
"""

from __future__ import annotations

import argparse

from pipelines import common
from transforms.dedup.connected_components import convergence
from transforms.decontamination import BENCHMARKS, DEFAULT_MIN_COVERAGE, Decontaminate
from transforms.decontamination import DEFAULT_NGRAM as DECONTAMINATION_NGRAM
from transforms.dedup.near import STAGE as NEAR_DEDUP_STAGE
from transforms.dedup.near import VERIFY_MODES, NearDedup, NearDedupConfig
from transforms.streams.write_packed_streams import WritePackedStreams
from transforms.streams.packing import TAIL_MODES
from transforms.stats.side_outputs import WriteDocuments, WriteRejects
from transforms.stats.run_stats import read_json
from transforms.streams.tokenize import load_tokenizer

MAX_SHARDS = 99999  # shard names carry five digits


def add_stream_flags(parser) -> None:
    """--output, --tokenizer and the tokenize/shuffle/pack flags."""
    parser.add_argument("--output", required=True,
                        help="The dataset version to publish, ROOT/DATASET/VERSION (any Beam filesystem);"
                             " a published version is never overwritten.")
    parser.add_argument("--tokenizer", required=True, help="SentencePiece model from pipelines.tokenizer.")
    parser.add_argument("--seq_len", type=common.positive_int, default=2048)
    parser.add_argument("--num_shards", type=common.positive_int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the global shuffle.")
    parser.add_argument("--pack_tail", choices=TAIL_MODES, default="drop",
                        help="The tokens that do not fill a last sequence: drop, or pad with a loss mask.")


def add_side_output_flags(parser) -> None:
    parser.add_argument("--write_documents", action="store_true", help="Write curated documents as Parquet.")
    parser.add_argument("--write_rejects", action="store_true", help="Write every reject as Parquet.")


def check_stream_flags(args) -> None:
    if args.num_shards > MAX_SHARDS:
        raise common.UsageError(f"--num_shards: at most {MAX_SHARDS}")


def stream_tokenizer(args):
    """The --tokenizer model, or a one-line usage error."""
    common.require_file(args.tokenizer, "--tokenizer")
    try:
        return load_tokenizer(args.tokenizer)
    except (ValueError, RuntimeError) as err:
        raise common.UsageError(f"--tokenizer: {args.tokenizer} is not a Sluice tokenizer ({err})") from None


def packed_streams(args, tokenizer, stats_path: str, prefix_language_tag: bool = False,
                   language_stats_path: str | None = None) -> WritePackedStreams:
    """Tokenize, shuffle, pack and write, as the stream flags say."""
    return WritePackedStreams(
        args.output, args.tokenizer, seq_len=args.seq_len, num_shards=args.num_shards,
        seed=args.seed, pack_tail=args.pack_tail, eot_id=tokenizer.eot_id, pad_id=tokenizer.pad_id,
        stats_path=stats_path, prefix_language_tag=prefix_language_tag,
        language_stats_path=language_stats_path,
    )


def stream_config(args) -> dict:
    """The stream flags that change the output, for the manifest's config."""
    return {"tokenizer": args.tokenizer, "seq_len": args.seq_len, "num_shards": args.num_shards,
            "seed": args.seed, "pack_tail": args.pack_tail}


def stream_manifest_sections(args, tokenizer) -> dict:
    """The manifest's tokenizer, stream and side_outputs sections."""
    return {
        "tokenizer": {**common.file_sha256(args.tokenizer), "vocab_size": tokenizer.vocab_size,
                      "eot_id": tokenizer.eot_id, "pad_id": tokenizer.pad_id},
        "stream": {"seq_len": args.seq_len, "formats": ["tfrecord", "arrow"],
                   "loss_mask": args.pack_tail == "pad"},
        "side_outputs": {"documents": "documents/" if args.write_documents else None,
                         "rejects": "rejects/" if args.write_rejects else None},
    }


def add_near_dedup_flags(parser, default: bool = True) -> None:
    d = NearDedupConfig()
    state = ("on by default; --no-near_dedup turns it off" if default
             else "off by default; --near_dedup turns it on")
    parser.add_argument("--near_dedup", action=argparse.BooleanOptionalAction, default=default,
                        help=f"MinHash near-dedup ({state}).")
    parser.add_argument("--dedup_threshold", type=float, default=d.threshold,
                        help="Jaccard similarity at which two documents are near-duplicates.")
    parser.add_argument("--num_perm", type=common.positive_int, default=d.num_perm,
                        help="MinHash permutations; LSH bands and rows follow from it and the threshold.")
    parser.add_argument("--dedup_ngram", type=common.positive_int, default=d.ngram, help="Words per shingle.")
    parser.add_argument("--dedup_seed", type=int, default=d.seed, help="MinHash seed (datasketch's).")
    parser.add_argument("--dedup_verify", choices=VERIFY_MODES, default=d.verify,
                        help="Check LSH candidates by signature Jaccard, exact shingle Jaccard, or not at all.")
    parser.add_argument("--lsh_false_negative_weight", type=float, default=d.lsh_false_negative_weight,
                        help="Weight of false negatives when datasketch picks LSH bands and rows.")
    parser.add_argument("--cc_rounds", type=common.positive_int, default=d.cc_rounds,
                        help="Rounds of the distributed connected components (a run that needed more fails).")
    parser.add_argument("--lsh_shards", type=common.positive_int, default=d.lsh_shards,
                        help="LSH shards; a shard's worker sorts documents x bands / shards band keys in memory "
                             "(~100 bytes each): raise it in proportion past ~250 million documents.")


def near_dedup_config(args) -> NearDedupConfig | None:
    if not args.near_dedup:
        return None
    if not 0.0 < args.dedup_threshold <= 1.0:
        raise common.UsageError("--dedup_threshold: must be in (0, 1]")
    if not 0.0 < args.lsh_false_negative_weight < 1.0:
        raise common.UsageError("--lsh_false_negative_weight: must be in (0, 1)")
    return NearDedupConfig(
        threshold=args.dedup_threshold, num_perm=args.num_perm, ngram=args.dedup_ngram,
        seed=args.dedup_seed, verify=args.dedup_verify, cc_rounds=args.cc_rounds, lsh_shards=args.lsh_shards,
        lsh_false_negative_weight=args.lsh_false_negative_weight,
    )


def near_dedup_report(config: NearDedupConfig, counts: dict) -> dict:
    """LSH parameters and the proof of convergence; a run that did not converge is not published."""
    bands, rows = config.bands_rows()
    stage = counts.get(NEAR_DEDUP_STAGE, {})
    report = {"bands": bands, "rows": rows, "components": stage.get("components", 0),
              "removed": stage.get("near_duplicate", 0),
              "connected_components": convergence(stage, config.cc_rounds)}
    if not report["connected_components"]["converged"]:
        raise common.UsageError(
            f"--cc_rounds: near-dedup's connected components did not converge in {config.cc_rounds}"
            f" rounds (edges rewired per round: {report['connected_components']['rewired_per_round']});"
            " nothing was published: rerun with a larger --cc_rounds"
        )
    return report


def add_decontamination_flags(parser) -> None:
    parser.add_argument("--decontaminate", action=argparse.BooleanOptionalAction, default=True,
                        help="Remove documents containing an evaluation benchmark's problems (on by default).")
    parser.add_argument("--benchmarks", type=common.comma_list, default=BENCHMARKS,
                        help="Built-in benchmarks to decontaminate against (humaneval, mtpb).")
    parser.add_argument("--benchmark_jsonl", action="append", default=[],
                        help="Extra benchmark texts, JSONL of {id, text} (repeatable; any Beam filesystem).")
    parser.add_argument("--decontamination_ngram", type=common.positive_int, default=DECONTAMINATION_NGRAM)
    parser.add_argument("--decontamination_min_coverage", type=float, default=DEFAULT_MIN_COVERAGE,
                        help="Share of a benchmark item's n-grams a document must hold to be contaminated.")


def decontamination_config(args) -> dict | None:
    if not args.decontaminate:
        return None
    for path in args.benchmark_jsonl:
        common.require_file(path, "--benchmark_jsonl")
    config = {"benchmarks": list(args.benchmarks), "extra_paths": list(args.benchmark_jsonl),
              "ngram": args.decontamination_ngram, "min_coverage": args.decontamination_min_coverage}
    try:
        Decontaminate(**config)
    except ValueError as err:
        raise common.UsageError(f"--benchmarks/--decontamination_*: {err}") from None
    return config


def clean_code(documents, rejects: list, decontamination: dict | None, near_dedup):
    """Decontamination, then near-dedup (each when configured): (documents, rejects list).

    Decontaminate first, so a contaminated copy is never the one a near-duplicate cluster keeps.
    """
    rejects = list(rejects)
    if decontamination is not None:
        documents, contaminated = documents | "Decontaminate" >> Decontaminate(**decontamination)
        rejects.append(contaminated)
    if near_dedup is not None:
        documents, near_duplicates = documents | "NearDedup" >> NearDedup(near_dedup)
        rejects.append(near_duplicates)
    return documents, rejects


def write_side_outputs(args, documents, rejects) -> None:
    """--write_documents / --write_rejects as Parquet under the output."""
    if args.write_documents:
        documents | "WriteDocuments" >> WriteDocuments(args.output)
    if args.write_rejects:
        rejects | "WriteRejects" >> WriteRejects(args.output)


def finished_run(result, near_dedup, stats_dir: str) -> tuple[dict, list, dict]:
    """After the job: (counts, shard stats in shard order, manifest sections common to corpora)."""
    counts = common.counts_from_metrics(result)
    sections = {"histograms": common.histograms_from_metrics(result)}
    if near_dedup is not None:
        sections["near_dedup"] = near_dedup_report(near_dedup, counts)
    shards = sorted(read_json(common.join(stats_dir, "shards.json")), key=lambda s: s["shard"])
    return counts, shards, sections


def add_corpus_flags(parser, *, near_dedup_default: bool, decontamination: bool):
    """Add the flag groups every corpus pipeline shares after its own read flags; returns the parser
    (each pipeline's ``build_parser``, which the Flex Template metadata is generated from)."""
    add_stream_flags(parser)
    if decontamination:
        add_decontamination_flags(parser)
    add_near_dedup_flags(parser, default=near_dedup_default)
    add_side_output_flags(parser)
    return parser


def parse_corpus_args(parser, argv, *, near_dedup_default: bool, decontamination: bool):
    """Add the flag groups every corpus pipeline shares after its own read flags, then parse:
    (args, the remaining flags for Beam)."""
    add_corpus_flags(parser, near_dedup_default=near_dedup_default, decontamination=decontamination)
    return parse_built(parser, argv)


def parse_built(parser, argv):
    """Parse with a parser from ``add_corpus_flags``: (args, the remaining flags for Beam)."""
    args, beam_args = parser.parse_known_args(argv)
    check_stream_flags(args)
    return args, beam_args


def start_run(args) -> tuple:
    """Check the tokenizer, then claim the output version: (tokenizer, scratch folder, start time).

    The tokenizer is checked first so a bad --tokenizer never touches an existing output. From here
    ``args.output`` is the version's staging folder (every write goes there); publish_manifest
    moves it into the version.
    """
    tokenizer = stream_tokenizer(args)
    args.output = common.prepare_output(args.output)
    return tokenizer, common.join(args.output, common.RUN_STATS_DIR), common.started_at()
