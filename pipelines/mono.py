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
from pipelines.driver import ArgumentParser, UsageError, comma_list, non_negative_float, non_negative_int
from pipelines.driver import positive_int, require_file
from pipelines.driver import run_main
from pipelines.manifests import file_sha256
from pipelines.run import RUN
from transforms.curation.github import CurateGithubRepos, CurationConfig
from transforms.filters.licenses import DEFAULT_ALLOWED, DEFAULT_MIN_CONFIDENCE, normalize_allow_list
from transforms.curation.github import UNREADABLE
from transforms.sources.archive_stream import ArchiveLimits
from transforms.sources.http_fetch import DEFAULT_TOKEN_HOSTS, FetchPolicy, read_token
from transforms.stats.run_stats import ArchiveFingerprintFn, WriteJson, read_json

DATASET = "mono"
# The flags that set each stage, named when a stage removes everything (CorpusRun.publish).
STAGE_FLAGS = (("input", ("input",)), ("stars", ("min_stars",)),
               ("license", ("licenses", "license_min_confidence")), ("select", ("extensions", "max_file_bytes")),
               ("quality", flags.QUALITY_FLAGS))
UNREADABLE_STATS = "unreadable.json"
DEFAULT_MAX_UNREADABLE_SHARE = 0.001


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_fetch_flags(parser: argparse.ArgumentParser) -> None:
    """How archives are downloaded (retries, timeouts, the GitHub token) and the run's loss gate."""
    policy = FetchPolicy()
    parser.add_argument("--archive_retries", type=non_negative_int, default=policy.retries,
                        help="Reads of an archive again from its start after a transient failure.")
    parser.add_argument("--archive_backoff_s", type=non_negative_float, default=policy.backoff_s,
                        help="First retry's backoff bound (doubles per retry, full jitter).")
    parser.add_argument("--archive_backoff_max_s", type=non_negative_float, default=policy.backoff_max_s,
                        help="Bound on one backoff, a server's Retry-After included.")
    parser.add_argument("--archive_timeout_s", type=non_negative_float, default=policy.read_timeout_s,
                        help="Connect timeout, and the longest silence while reading an archive.")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--github_token_env", metavar="NAME",
                       help="Environment variable holding a GitHub token (read on the workers).")
    token.add_argument("--github_token_file", metavar="PATH",
                       help="File holding a GitHub token, e.g. a mounted secret (any fsspec path).")
    parser.add_argument("--github_token_hosts", type=comma_list, default=DEFAULT_TOKEN_HOSTS,
                        help="Hosts the token is sent to (never across a redirect to another host).")
    parser.add_argument("--max_unreadable_share", type=_share, default=DEFAULT_MAX_UNREADABLE_SHARE,
                        help="Fail, publishing nothing, past this share of archives unreadable after retries.")
    parser.add_argument("--max_unreadable", type=non_negative_int, default=None,
                        help="Fail, publishing nothing, past this many archives unreadable after retries.")


def policy_of(args) -> FetchPolicy:
    """The download policy the fetch flags (``add_fetch_flags``) describe, as the config records it."""
    return FetchPolicy(
        retries=args.archive_retries, backoff_s=args.archive_backoff_s,
        backoff_max_s=args.archive_backoff_max_s, connect_timeout_s=args.archive_timeout_s,
        read_timeout_s=args.archive_timeout_s, token_env=args.github_token_env,
        token_file=args.github_token_file,
        token_hosts=tuple(sorted({h.lower() for h in args.github_token_hosts})))


def fetch_policy(args) -> FetchPolicy:
    """The download policy of the flags; the token's source is checked here (one line naming the
    variable or file), read again on the workers, and never kept."""
    if args.archive_timeout_s <= 0:
        raise UsageError("--archive_timeout_s: must be > 0")
    policy = policy_of(args)
    try:
        read_token(policy)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return policy


def check_unreadable(args, counts: dict, archives: dict, first: list) -> dict:
    """The loss gate: the archives that stayed unreadable after their retries, against the limits.

    Counted from the job's counters (read's ``archive_unreadable``, license detection's
    ``license_archive_unreadable``) over the archives attempted (those read, plus those lost
    during license detection). Past ``--max_unreadable`` or ``--max_unreadable_share`` the run
    stops with one line naming the count, the share, the limit and the first repositories, so a
    network blip cannot quietly shrink a version; else the numbers go to the manifest.
    """
    lost = sum(counts.get(stage, {}).get(reason, 0) for stage, reason in UNREADABLE)
    attempted = archives.get("archives", 0) + counts.get("license", {}).get("license_archive_unreadable", 0)
    share = lost / attempted if attempted else 0.0
    over = [(flag, limit) for flag, limit, past in (
        ("--max_unreadable", args.max_unreadable, args.max_unreadable is not None and lost > args.max_unreadable),
        ("--max_unreadable_share", args.max_unreadable_share, share > args.max_unreadable_share)) if past]
    if over:
        flag, limit = over[0]
        names = ", ".join(first) + (", ..." if lost > len(first) else "")
        raise UsageError(
            f"{flag}: {lost} of {attempted} archives ({share:.2%}) unreadable after "
            f"{args.archive_retries} retries, over the limit {limit:g}: {names}; nothing was published")
    return {"unreadable": lost, "attempted": attempted, "share": share,
            "max_unreadable": args.max_unreadable, "max_unreadable_share": args.max_unreadable_share}


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
    add_fetch_flags(parser)
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
        fetch=fetch_policy(args),
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
    return fingerprints.fingerprints(DATASET, config, inputs, config["tokenizer"],
                                     drop=("manifest", "tokenizer", "decontamination.extra_paths"))


def main(argv=None, mode=RUN):
    args, beam_args = parse_args(argv)
    curation = curation_config(args)
    near_dedup = flags.near_dedup_config(args)
    decontamination = flags.decontamination_config(args)
    config = run_config(args, curation, near_dedup, decontamination)
    found = run_fingerprints(args, config, decontamination)
    fingerprints.gate(args, args.output, found, mode)
    with CorpusRun(DATASET, args, beam_args, mode, STAGE_FLAGS, found) as corpus:
        curated = corpus.pipeline | "Curate" >> CurateGithubRepos(curation)
        documents, rejects = corpus.clean(curated.documents, [curated.rejects], decontamination, near_dedup)
        rejects = rejects | "AllRejects" >> beam.Flatten()
        corpus.write(documents, rejects)
        (curated.archives | "Fingerprint" >> beam.CombineGlobally(ArchiveFingerprintFn())
         | "WriteArchiveStats" >> WriteJson(corpus.stats_path("archives.json")))
        curated.unreadable | "WriteUnreadable" >> WriteJson(corpus.stats_path(UNREADABLE_STATS))
        counts, shards, sections = corpus.execute()
        archives = read_json(corpus.stats_path("archives.json"))
        loss = check_unreadable(args, counts, archives, read_json(corpus.stats_path(UNREADABLE_STATS)))
        return corpus.publish(
            config=config, counts=counts, shards=shards,
            inputs={"manifest": file_sha256(args.input), "archives": {**archives, "loss_gate": loss}},
            **sections,
        )


def run(argv=None, mode=RUN) -> int:
    return run_main(main, argv, mode=mode)


if __name__ == "__main__":
    raise SystemExit(run())
