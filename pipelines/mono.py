"""The Mono corpus: permissively licensed GitHub Python repositories to packed training streams.

    python -m pipelines.mono --input MANIFEST.jsonl --output DIR --tokenizer MODEL.model \
        [--seq_len 2048] [--num_shards N] [--seed S] [--licenses ...] [--min_stars N] \
        [--max_file_bytes N] [--write_documents] [--write_rejects] [any Beam pipeline option]

Stages: manifest -> stars -> license -> read archives -> file selection -> code quality ->
exact dedup -> decontamination -> near-dedup -> tokenize -> global shuffle -> pack -> write shards,
then the driver writes ``manifest.json`` last.
"""

from __future__ import annotations

import argparse
import dataclasses

import apache_beam as beam

from pipelines import fingerprints, flags
from pipelines.corpus import CorpusRun
from pipelines.driver import ArgumentParser, UsageError, comma_list, non_negative_int, positive_int, require_file
from pipelines.driver import run_main
from pipelines.manifests import file_sha256
from pipelines.run import RUN
from transforms.curation.github import CurateGithubRepos, CurationConfig
from transforms.filters.licenses import DEFAULT_ALLOWED, DEFAULT_MIN_CONFIDENCE, normalize_allow_list
from transforms.sources.archive_stream import ArchiveLimits
from transforms.stats.run_stats import ArchiveFingerprintFn, WriteJson, read_json

DATASET = "mono"


def add_curation_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the GitHub read and filter stages (shared with the tokenizer pipeline)."""
    limits = ArchiveLimits()
    parser.add_argument("--input", required=True, help="Manifest JSONL of repositories (any Beam filesystem).")
    parser.add_argument("--licenses", type=comma_list, default=DEFAULT_ALLOWED,
                        help="Comma-separated allowed licenses (SPDX ids or GitHub keys).")
    parser.add_argument("--license_min_confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                        help="Lowest license-detector score accepted for undeclared licenses.")
    parser.add_argument("--min_stars", type=non_negative_int, default=0)
    parser.add_argument("--extensions", type=comma_list, default=(".py",),
                        help="Comma-separated file extensions to keep.")
    parser.add_argument("--max_file_bytes", type=positive_int, default=limits.max_file_bytes)
    parser.add_argument("--max_archive_bytes", type=positive_int, default=limits.max_archive_bytes,
                        help="Bound on the declared size of all members of one archive (bomb guard).")
    parser.add_argument("--max_archive_members", type=positive_int, default=limits.max_members)
    parser.add_argument("--max_archive_header_bytes", type=positive_int, default=limits.max_header_bytes,
                        help="Bound on one member's GNU long-name/long-link and PAX header data.")
    parser.add_argument("--max_archive_ratio", type=positive_int, default=limits.max_ratio,
                        help="Bound on decompressed:compressed bytes of one archive (bomb guard), "
                             "checked past the first 64 MiB.")
    parser.add_argument("--max_archive_stream_bytes", type=positive_int, default=limits.max_stream_bytes,
                        help="Bound on the bytes read from one archive, decompressed or compressed.")
    parser.add_argument("--max_archive_seconds", type=positive_int, default=int(limits.max_seconds),
                        help="Bound on the time spent reading one archive.")
    flags.add_quality_flags(parser)


def curation_config(args) -> CurationConfig:
    require_file(args.input, "--input")
    try:
        normalize_allow_list(args.licenses)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not 0.0 <= args.license_min_confidence <= 1.0:
        raise UsageError("--license_min_confidence: must be between 0 and 1")
    quality = flags.quality_thresholds(args)
    return CurationConfig(
        manifest=args.input,
        licenses=tuple(args.licenses),
        license_min_confidence=args.license_min_confidence,
        min_stars=args.min_stars,
        extensions=tuple(args.extensions),
        limits=ArchiveLimits(
            max_file_bytes=args.max_file_bytes, max_archive_bytes=args.max_archive_bytes,
            max_members=args.max_archive_members, max_header_bytes=args.max_archive_header_bytes,
            max_ratio=args.max_archive_ratio, max_stream_bytes=args.max_archive_stream_bytes,
            max_seconds=args.max_archive_seconds),
        quality=quality,
    )


def build_parser():
    """Every flag of the pipeline (the Flex Template's parameters are generated from it)."""
    parser = ArgumentParser(prog="sluice mono", description=__doc__.split("\n\n")[0])
    add_curation_flags(parser)
    return flags.add_corpus_flags(parser, near_dedup_default=True, decontamination=True)


def parse_args(argv):
    return flags.parse_built(build_parser(), argv)


def run_config(args, curation: CurationConfig, near_dedup, decontamination) -> dict:
    """The config recorded in the manifest: every flag that changes the output."""
    config = dataclasses.asdict(curation)
    config.update(
        **flags.stream_config(args),
        near_dedup=dataclasses.asdict(near_dedup) if near_dedup else None,
        decontamination=decontamination,
    )
    return config


def run_fingerprints(args, config: dict, decontamination) -> fingerprints.Fingerprints:
    """The config without paths; the manifest (and the archives it names on a filesystem) and
    extra benchmarks as inputs."""
    inputs = {**fingerprints.mono_manifest_inputs(args.input),
              "benchmarks": fingerprints.benchmark_inputs(decontamination)}
    return fingerprints.fingerprints(DATASET, config, inputs, args.tokenizer,
                                     drop=("manifest", "tokenizer", "decontamination.extra_paths"))


def main(argv=None, mode=RUN):
    args, beam_args = parse_args(argv)
    curation = curation_config(args)
    near_dedup = flags.near_dedup_config(args)
    decontamination = flags.decontamination_config(args)
    config = run_config(args, curation, near_dedup, decontamination)
    found = run_fingerprints(args, config, decontamination)
    fingerprints.gate(args, args.output, found, mode)
    with CorpusRun(DATASET, args, beam_args, mode, found) as corpus:
        curated = corpus.pipeline | "Curate" >> CurateGithubRepos(curation)
        documents, rejects = corpus.clean(curated.documents, [curated.rejects], decontamination, near_dedup)
        rejects = rejects | "AllRejects" >> beam.Flatten()
        corpus.write(documents, rejects)
        (curated.archives | "Fingerprint" >> beam.CombineGlobally(ArchiveFingerprintFn())
         | "WriteArchiveStats" >> WriteJson(corpus.stats_path("archives.json")))
        counts, shards, sections = corpus.execute()
        return corpus.publish(
            config=config, counts=counts, shards=shards,
            inputs={"manifest": file_sha256(args.input),
                    "archives": read_json(corpus.stats_path("archives.json"))},
            **sections,
        )


def run(argv=None, mode=RUN) -> int:
    return run_main(main, argv, mode=mode)


if __name__ == "__main__":
    raise SystemExit(run())
