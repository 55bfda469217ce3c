"""Assembling a version's manifest: identity, provenance, lineage, counts and shards, validated.

The manifest's schema (and its validation) is ``schemas/manifest.py``; this module fills it from
what a driver knows after its job: the config it applied, its inputs, the job's counters and the
shard statistics the job wrote.
"""

from __future__ import annotations

import datetime
import os
import subprocess

from apache_beam.io.filesystems import FileSystems

from pipelines.versions import split_version
from schemas import dataset_version
from schemas import manifest as manifest_schema
from schemas.files import sha256_of
from schemas.version import __version__


# Outcomes of a stage's counts that are not reject reasons: what a stage kept or measured.
NOT_REJECTS = frozenset({"kept", "tokens", "sequences", "documents", "tail_tokens", "dropped_tail_tokens",
                         "lines", "archives_complete", "files_complete", "components", "lsh_buckets",
                         "lsh_bucket_members", "verified_edges", "rejected_candidate_edges", "protected_duplicate",
                         "detected"})
# Stages in pipeline order (Mono, NL, Multi and instruct interleaved; each has a subset); others follow.
STAGE_ORDER = ("manifest", "stars", "license", "read", "instruct_read", "instruct_code", "instruct_render",
               "select", "set_filter", "quality", "exact_dedup", "decontaminate", "near_dedup", "tokenize",
               "instruct_cap", "instruct_tokenize", "pack")
REPOSITORY_STAGES = frozenset({"manifest", "stars", "license"})  # they count repositories, not documents


def stages_in_order(counts: dict) -> list:
    """The stages of ``counts`` in pipeline order (STAGE_ORDER), others after it by name."""
    order = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    return sorted(counts, key=lambda s: (order.get(s, len(order)), s))


def file_sha256(path: str) -> dict:
    """``{path, bytes, sha256}`` of a file on any Beam filesystem, read as a stream."""
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        size, digest = sha256_of(handle)
    return {"path": path, "bytes": size, "sha256": digest}


def stream_sections(args, tokenizer, side_outputs: dict | None = None) -> dict:
    """The manifest's tokenizer, stream and side_outputs sections, from the stream flags."""
    if side_outputs is None:
        side_outputs = {"documents": "documents/" if args.write_documents else None,
                        "rejects": "rejects/" if args.write_rejects else None}
    return {
        "tokenizer": {**file_sha256(args.tokenizer), "vocab_size": tokenizer.vocab_size,
                      "eot_id": tokenizer.eot_id, "pad_id": tokenizer.pad_id},
        "stream": {"seq_len": args.seq_len, "formats": ["tfrecord", "arrow"],
                   "loss_mask": args.pack_tail == "pad"},
        "side_outputs": side_outputs,
    }


def git_commit() -> str:
    """The commit Sluice runs from: $SLUICE_GIT_COMMIT (set in containers), else git, else unknown."""
    if os.environ.get("SLUICE_GIT_COMMIT"):
        return os.environ["SLUICE_GIT_COMMIT"]
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def sluice_info() -> dict:
    return {"version": __version__, "git_commit": git_commit()}


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parent_version(model_or_folder: str) -> dict | None:
    """The published version a file comes from (its folder's manifest), for the lineage."""
    folder = model_or_folder.rstrip("/")
    for candidate in (folder, folder.rsplit("/", 1)[0]):
        try:
            parent, sha256 = dataset_version.read_manifest_file(candidate, validate=False)
        except dataset_version.MISSING:
            continue
        return {"dataset": parent.get("dataset"), "version": parent.get("version", {}).get("name"),
                "path": candidate, "manifest_sha256": sha256,
                "config_fingerprint": parent.get("config_fingerprint")}
    return None


def lineage(inputs: dict, tokenizer: dict, parents: dict | None = None) -> dict:
    """Where a version comes from: parent versions (the tokenizer's, and any given), input fingerprint."""
    found = dict(parents or {})
    if tokenizer.get("path") and "tokenizer" not in found:
        parent = parent_version(tokenizer["path"])
        if parent is not None:
            found["tokenizer"] = parent
    return {
        "parents": dict(sorted(found.items())),
        "tokenizer_sha256": tokenizer.get("sha256"),
        "inputs_fingerprint": manifest_schema.fingerprint(manifest_schema.plain(inputs)),
    }


def build_manifest(version: str, staging: str, *, dataset: str, started: str, config: dict, counts: dict,
                   inputs: dict, tokenizer: dict, shards: list, parents: dict | None = None,
                   split: str | None = None, **sections) -> dict:
    """Assemble and validate the manifest of ``version``, staged at ``staging`` (not written).

    Paths inside the staging folder are recorded as their published paths. ``split`` names a
    subfolder of the version that is a complete dataset of its own (instruct's ``--all_holdouts``);
    its manifest's ``version`` says which.
    """
    config = manifest_schema.plain(config)
    tokenizer = dict(tokenizer)
    if tokenizer.get("path", "").startswith(staging + "/"):
        tokenizer["path"] = version + tokenizer["path"][len(staging):]
    folder, name = split_version(version)
    manifest = {
        "format_version": manifest_schema.FORMAT_VERSION,
        "dataset": dataset,
        "version": {"name": name, "dataset_folder": folder, **({"split": split} if split else {})},
        "created": {"started": started, "finished": utc_now()},
        "sluice": sluice_info(),
        "config": config,
        "config_fingerprint": manifest_schema.fingerprint(config),
        "inputs": inputs,
        "tokenizer": tokenizer,
        "lineage": lineage(inputs, tokenizer, parents),
        "counts": counts,
        **sections,
        "shards": shards,
        "totals": manifest_schema.totals_of(shards),
    }
    manifest = manifest_schema.plain(manifest)
    manifest_schema.validate(manifest)
    return manifest
