"""The NL corpus: The Pile's JSON Lines release to packed training streams.

    python -m pipelines.nl --input 'PILE/train/*.jsonl.zst' --output DIR --tokenizer MODEL.model \
        [--include_sets A,B] [--exclude_sets C] [--on_damage fail|continue] [--seq_len 2048] \
        [--num_shards N] [--seed S] [--no-exact_dedup] [--near_dedup] [--write_documents] \
        [--write_rejects] [any Beam pipeline option]

Stages: read files -> set filter -> exact dedup -> [near-dedup, off by default: CodeGen did not
near-dedup the Pile] -> tokenize -> global shuffle -> pack -> write shards (the same tail as
Mono), then the driver writes ``manifest.json`` last, with per-set and per-file sections.
"""

from __future__ import annotations

import argparse
import dataclasses

import apache_beam as beam

from pipelines import fingerprints, flags
from pipelines.corpus import CorpusRun
from pipelines.driver import ArgumentParser, DryRun, Submitted, UsageError, comma_list, positive_int, run_main
from pipelines.run import RUN
from schemas.pile import canonical_set_names
from transforms.dedup.near import STAGE as NEAR_DEDUP_STAGE
from transforms.curation.pile import CuratePile, PileConfig
from transforms.sources.pile_reader import DEFAULT_MAX_LINE_BYTES, ON_DAMAGE, damage_message, match_inputs
from transforms.stats.run_stats import WriteJson, read_json
from transforms.stats.set_stats import TallyBySet, WriteSetStats, sets_report

DATASET = "nl"
# The flags that set each stage, named when a stage removes everything (CorpusRun.publish).
STAGE_FLAGS = (("input", ("input",)), ("set_filter", ("include_sets", "exclude_sets")),
               ("read", ("max_line_bytes",)))


def add_read_flags(parser) -> None:
    """Flags of the Pile read and filter stages (shared with the tokenizer pipeline)."""
    parser.add_argument("--input", required=True, type=comma_list,
                        help="Pile files: comma-separated globs or paths (.jsonl.zst, .jsonl.gz, .jsonl;"
                             " any Beam filesystem).")
    parser.add_argument("--include_sets", type=comma_list, default=(),
                        help="Comma-separated pile_set_name values to keep (default: all 22).")
    parser.add_argument("--exclude_sets", type=comma_list, default=(),
                        help="Comma-separated pile_set_name values to drop.")
    parser.add_argument("--on_damage", choices=ON_DAMAGE, default="fail",
                        help="A truncated or corrupt file fails the run (default), or its lines read"
                             " before the damage are kept and the file is reported (continue).")
    parser.add_argument("--exact_dedup", action=argparse.BooleanOptionalAction, default=True,
                        help="Exact dedup by content (on by default; --no-exact_dedup turns it off).")
    parser.add_argument("--max_line_bytes", type=positive_int, default=DEFAULT_MAX_LINE_BYTES,
                        help="Longer lines are rejected as they stream by (bounds a worker's memory).")


def read_config(args) -> PileConfig:
    try:
        match_inputs(args.input)
    except ValueError as err:
        raise UsageError(f"--input: {err}") from None
    selected = {}
    for flag in ("include_sets", "exclude_sets"):
        try:
            selected[flag] = canonical_set_names(getattr(args, flag))
        except ValueError as err:
            raise UsageError(f"--{flag}: {err}") from None
    both = sorted(set(selected["include_sets"]) & set(selected["exclude_sets"]))
    if both:
        raise UsageError(f"--include_sets/--exclude_sets: {', '.join(both)} is in both")
    return PileConfig(
        inputs=tuple(args.input), include_sets=selected["include_sets"],
        exclude_sets=selected["exclude_sets"], on_damage=args.on_damage,
        exact_dedup=args.exact_dedup, max_line_bytes=args.max_line_bytes,
    )


def run_job(run, pipeline):
    """Run and wait; a damaged input under --on_damage fail becomes one line naming the file."""
    try:
        result = run.execute(pipeline)
    except (DryRun, Submitted):
        raise
    except Exception as err:  # runners wrap a worker's exception in their own types
        message = damage_message(err)
        if message is None:
            raise
        raise UsageError(
            f"--input: {message}; nothing was published (--on_damage continue keeps the lines read"
            " before the damage and reports the file in the manifest)"
        ) from None
    return result


def build_parser():
    """Every flag of the pipeline (the Flex Template's parameters are generated from it)."""
    parser = ArgumentParser(prog="sluice nl", description=__doc__.split("\n\n")[0])
    add_read_flags(parser)
    return flags.add_corpus_flags(parser, near_dedup_default=False, decontamination=False)


def parse_args(argv):
    return flags.parse_built(build_parser(), argv)


def run_config(args, pile: PileConfig, near_dedup) -> dict:
    """The config recorded in the manifest: every flag that changes the output."""
    return {**dataclasses.asdict(pile), **flags.stream_config(args),
            "near_dedup": dataclasses.asdict(near_dedup) if near_dedup else None}


def inputs_section(patterns, files: list) -> dict:
    """What was read: per file its size, lines and status (no hash: a shard is ~15 GB)."""
    files = sorted(files, key=lambda f: f["path"])
    damaged = [f["name"] for f in files if f["status"] != "complete"]
    return {
        "patterns": list(patterns),
        "files": files,
        "totals": {"files": len(files), "bytes": sum(f["bytes"] for f in files),
                   "uncompressed_bytes": sum(f["uncompressed_bytes"] for f in files),
                   "lines": sum(f["lines"] for f in files), "damaged": damaged},
    }


def run_fingerprints(args, config: dict) -> fingerprints.Fingerprints:
    """The config without paths; the files the patterns match as inputs."""
    return fingerprints.fingerprints(DATASET, config, fingerprints.pile_inputs(args.input), config["tokenizer"],
                                     drop=("inputs", "tokenizer"))


def main(argv=None, mode=RUN):
    args, beam_args = parse_args(argv)
    pile = read_config(args)
    near_dedup = flags.near_dedup_config(args)
    config = run_config(args, pile, near_dedup)
    found = run_fingerprints(args, config)
    fingerprints.gate(args, args.output, found, mode)
    with CorpusRun(DATASET, args, beam_args, mode, STAGE_FLAGS, found) as corpus:
        curated = corpus.pipeline | "Curate" >> CuratePile(pile)
        documents, rejects = corpus.clean(curated.documents, [curated.rejects], None, near_dedup)
        tallies, boundaries = list(curated.tallies), list(curated.boundaries)
        if near_dedup is not None:
            tallies.append(documents | "TallyNearDedup" >> TallyBySet(NEAR_DEDUP_STAGE))
            boundaries.append(NEAR_DEDUP_STAGE)
        corpus.write(documents, rejects | "AllRejects" >> beam.Flatten())
        (curated.files | "AllFileReports" >> beam.combiners.ToList()
         | "WriteFileReports" >> WriteJson(corpus.stats_path("files.json")))
        (tallies | "AllTallies" >> beam.Flatten()
         | "WriteSetStats" >> WriteSetStats(corpus.stats_path("sets.json")))
        counts, shards, sections = corpus.execute(run_job)
        sections["sets"] = sets_report(read_json(corpus.stats_path("sets.json")), boundaries)
        return corpus.publish(
            config=config, counts=counts, shards=shards,
            inputs=inputs_section(args.input, read_json(corpus.stats_path("files.json"))), **sections)


def run(argv=None, mode=RUN) -> int:
    return run_main(main, argv, mode=mode)


if __name__ == "__main__":
    raise SystemExit(run())
