"""What every Sluice pipeline's driver does: flags, runner choice, output guard, counts, manifest.

Pipelines take their own flags with argparse and pass every other flag to Beam, as Beam's examples
do. Errors in flags or inputs end the run with one line naming what is wrong (exit status 2).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import subprocess
import sys

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from schemas import manifest as manifest_schema
from schemas.version import __version__
from transforms.counting import NAMESPACE_PREFIX

# Beam's DirectRunner first tries the Prism runner, which downloads a binary; Sluice's local
# default is the Python batch runner (FnApiRunner, what the DirectRunner falls back to), which
# honours --direct_running_mode and --direct_num_workers and never touches the network.
DEFAULT_RUNNER = "FnApiRunner"
RUN_STATS_DIR = "_run"


class UsageError(Exception):
    """A bad flag or input: reported as one line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UsageErrors: one line, not usage text plus an error line."""

    def error(self, message):
        raise UsageError(message)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def comma_list(text: str) -> tuple:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError("must name at least one item")
    return items


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the remaining flags, with Sluice's offline local runner by default."""
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER
    return options


def join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


def require_file(path: str, flag: str) -> None:
    if not FileSystems.match([path])[0].metadata_list:
        raise UsageError(f"{flag}: no file matches {path}")


def prepare_output(output: str, overwrite: bool) -> None:
    """Refuse an output that holds a manifest, unless told to overwrite (the old one goes first)."""
    manifest_path = join(output, manifest_schema.MANIFEST_NAME)
    if FileSystems.exists(manifest_path):
        if not overwrite:
            raise UsageError(
                f"--output: {output} already holds a published dataset ({manifest_schema.MANIFEST_NAME});"
                " pass --overwrite to replace it"
            )
        FileSystems.delete([manifest_path])
        stale = FileSystems.match([join(output, "train-*")])[0].metadata_list
        if stale:
            FileSystems.delete([m.path for m in stale])
        for folder in ("documents", "rejects", RUN_STATS_DIR):
            if FileSystems.exists(join(output, folder)):
                FileSystems.delete([join(output, folder)])
    if not FileSystems.exists(output):
        FileSystems.mkdirs(output)


def counts_from_metrics(result) -> dict:
    """``{stage: {outcome: n}}`` from the job's ``sluice.*`` counters (committed where known)."""
    counts: dict = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        namespace = counter.key.metric.namespace
        if not namespace.startswith(NAMESPACE_PREFIX):
            continue
        stage = namespace[len(NAMESPACE_PREFIX):]
        value = counter.committed if counter.committed is not None else counter.attempted
        per_stage = counts.setdefault(stage, {})
        per_stage[counter.key.metric.name] = per_stage.get(counter.key.metric.name, 0) + value
    return {stage: dict(sorted(v.items())) for stage, v in sorted(counts.items())}


def file_sha256(path: str) -> dict:
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return {"path": path, "bytes": size, "sha256": digest.hexdigest()}


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


def remove(path: str) -> None:
    """Delete a file or folder if it exists."""
    if FileSystems.exists(path):
        FileSystems.delete([path])


def write_json_file(path: str, value: dict) -> None:
    """Write JSON through a temporary name and rename, so readers never see half a file."""
    temporary = path + ".tmp"
    with FileSystems.create(temporary) as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=True).encode("utf-8") + b"\n")
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def publish_manifest(output: str, *, dataset: str, started: str, config: dict, counts: dict,
                     inputs: dict, tokenizer: dict, shards: list, **sections) -> dict:
    """Assemble, validate and write ``manifest.json`` last; the run's scratch folder goes first."""
    config = manifest_schema.plain(config)
    manifest = {
        "format_version": manifest_schema.FORMAT_VERSION,
        "dataset": dataset,
        "created": {"started": started, "finished": utc_now()},
        "sluice": sluice_info(),
        "config": config,
        "config_fingerprint": manifest_schema.fingerprint(config),
        "inputs": inputs,
        "tokenizer": tokenizer,
        "counts": counts,
        **sections,
        "shards": shards,
        "totals": manifest_schema.totals_of(shards),
    }
    manifest_schema.validate(manifest)
    remove(join(output, RUN_STATS_DIR))
    write_json_file(join(output, manifest_schema.MANIFEST_NAME), manifest)
    return manifest


def run_main(main, argv=None) -> int:
    """Run ``main(argv)``; a UsageError or a bad flag becomes one line on stderr and exit status 2."""
    logging.getLogger().setLevel(logging.WARNING)
    try:
        main(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
