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

from pipelines import common, flags
from transforms.sources.archive_stream import ArchiveLimits
from transforms.curation.github import CurateGithubRepos, CurationConfig
from transforms.filters.licenses import DEFAULT_ALLOWED, DEFAULT_MIN_CONFIDENCE, normalize_allow_list
from transforms.filters.quality import QualityThresholds
from transforms.stats.run_stats import ArchiveFingerprintFn, WriteJson, read_json

DATASET = "mono"


def add_curation_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the GitHub read and filter stages (shared with the tokenizer pipeline)."""
    q, limits = QualityThresholds(), ArchiveLimits()
    parser.add_argument("--input", required=True, help="Manifest JSONL of repositories (any Beam filesystem).")
    parser.add_argument("--licenses", type=common.comma_list, default=DEFAULT_ALLOWED,
                        help="Comma-separated allowed licenses (SPDX ids or GitHub keys).")
    parser.add_argument("--license_min_confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                        help="Lowest license-detector score accepted for undeclared licenses.")
    parser.add_argument("--min_stars", type=common.non_negative_int, default=0)
    parser.add_argument("--extensions", type=common.comma_list, default=(".py",),
                        help="Comma-separated file extensions to keep.")
    parser.add_argument("--max_file_bytes", type=common.positive_int, default=limits.max_file_bytes)
    parser.add_argument("--max_archive_bytes", type=common.positive_int, default=limits.max_archive_bytes,
                        help="Bound on the declared size of all members of one archive (bomb guard).")
    parser.add_argument("--max_archive_members", type=common.positive_int, default=limits.max_members)
    parser.add_argument("--max_avg_line_length", type=float, default=q.max_avg_line_length)
    parser.add_argument("--max_line_length", type=common.positive_int, default=q.max_line_length)
    parser.add_argument("--max_digit_fraction", type=float, default=q.max_digit_fraction)
    parser.add_argument("--generated_scan_lines", type=common.non_negative_int, default=q.generated_scan_lines)


def curation_config(args) -> CurationConfig:
    common.require_file(args.input, "--input")
    try:
        normalize_allow_list(args.licenses)
    except ValueError as err:
        raise common.UsageError(str(err)) from None
    if not 0.0 <= args.license_min_confidence <= 1.0:
        raise common.UsageError("--license_min_confidence: must be between 0 and 1")
    if not 0.0 < args.max_digit_fraction <= 1.0:
        raise common.UsageError("--max_digit_fraction: must be in (0, 1]")
    return CurationConfig(
        manifest=args.input,
        licenses=tuple(args.licenses),
        license_min_confidence=args.license_min_confidence,
        min_stars=args.min_stars,
        extensions=tuple(args.extensions),
        limits=ArchiveLimits(args.max_file_bytes, args.max_archive_bytes, args.max_archive_members),
        quality=dataclasses.replace(
            QualityThresholds(),
            max_avg_line_length=args.max_avg_line_length,
            max_line_length=args.max_line_length,
            max_digit_fraction=args.max_digit_fraction,
            generated_scan_lines=args.generated_scan_lines,
        ),
    )


def build_parser():
    """Every flag of the pipeline (the Flex Template's parameters are generated from it)."""
    parser = common.ArgumentParser(prog="sluice mono", description=__doc__.split("\n\n")[0])
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


def main(argv=None):
    args, beam_args = parse_args(argv)
    curation = curation_config(args)
    near_dedup = flags.near_dedup_config(args)
    decontamination = flags.decontamination_config(args)
    tokenizer, stats_dir, started = flags.start_run(args)

    pipeline = beam.Pipeline(options=common.pipeline_options(beam_args))
    curated = pipeline | "Curate" >> CurateGithubRepos(curation)
    documents, rejects = flags.clean_code(curated.documents, [curated.rejects], decontamination, near_dedup)
    rejects = rejects | "AllRejects" >> beam.Flatten()
    documents | "WriteStreams" >> flags.packed_streams(args, tokenizer, common.join(stats_dir, "shards.json"))
    (curated.archives | "Fingerprint" >> beam.CombineGlobally(ArchiveFingerprintFn())
     | "WriteArchiveStats" >> WriteJson(common.join(stats_dir, "archives.json")))
    flags.write_side_outputs(args, documents, rejects)
    result = common.run_pipeline(pipeline)
    counts, shards, sections = flags.finished_run(result, near_dedup, stats_dir)
    return common.publish_manifest(
        args.output,
        dataset=DATASET,
        started=started,
        config=run_config(args, curation, near_dedup, decontamination),
        counts=counts,
        inputs={
            "manifest": common.file_sha256(args.input),
            "archives": read_json(common.join(stats_dir, "archives.json")),
        },
        shards=shards,
        **flags.stream_manifest_sections(args, tokenizer),
        **sections,
    )


def run(argv=None) -> int:
    return common.run_main(main, argv)


if __name__ == "__main__":
    raise SystemExit(run())
