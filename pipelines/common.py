"""What every Sluice pipeline's driver does: flags, runner choice, output guard, counts, manifest.

Pipelines take their own flags with argparse and pass every other flag to Beam, as Beam's examples
do. Errors in flags or inputs end the run with one line naming what is wrong (exit status 2).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import re
import subprocess
import sys

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines import claims
from schemas import manifest as manifest_schema
from schemas.version import __version__
from transforms.stats import histograms
from transforms.stats import progress
from transforms.stats.counting import NAMESPACE_PREFIX

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


# A version is ROOT/DATASET/VERSION/: --output names it. A run writes into
# ROOT/DATASET/_staging/VERSION/ and publishes by moving the files into the version folder, then
# writing manifest.json last; a version folder with a manifest is never written again.
STAGING_DIR = "_staging"
# Marks a version folder whose files are being moved in: it is ours, and without a manifest it is
# the leftover of an interrupted publish, safe to clear on the rerun.
PUBLISHING_MARKER = "_PUBLISHING"
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_STAGED: dict = {}  # staging folder -> version folder, for publish_manifest
_CURRENT = {"staging": None}  # the staging folder this process claimed last (run_pipeline's)
_CLAIMS: dict = {}  # staging folder -> this process's claim on it (pipelines/claims.py)
JOB_FILE = "job.json"  # in the staging folder's _run/: the submitted job, for the finalize step

# How the driver runs its job. "run": run and wait, then publish (local runs, direct Dataflow
# launches). A Flex Template's launcher must not wait for the job, so it runs in "submit" mode
# (submit, note the job in staging, stop) and a later "finalize" step (the DAG's, after the job
# succeeded) rebuilds the same driver, takes the counts from the finished job and publishes.
# Set only by dataflow_templates.launch.
RUN_MODE = {"mode": "run", "job_id": None, "started": None}


class Submitted(Exception):
    """The job was submitted (submit mode); the launcher exits, the finalize step publishes."""

    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id


class DryRun(Exception):
    """--dry_run=True: the graph translated for the runner; nothing ran, nothing is published."""

    def __init__(self, result, staging: str | None):
        super().__init__("dry run")
        self.result = result
        self.staging = staging


def split_version(output: str) -> tuple[str, str]:
    """``ROOT/DATASET/VERSION`` -> (``ROOT/DATASET``, ``VERSION``), or a UsageError."""
    trimmed = output.rstrip("/")
    folder, _, version = trimmed.rpartition("/")
    if not folder or not VERSION_NAME.fullmatch(version):
        raise UsageError(
            f"--output: {output} must be a version folder ROOT/DATASET/VERSION, VERSION made of letters,"
            " digits and . _ + - (starting with a letter or digit)"
        )
    return folder, version


def staging_folder(output: str) -> str:
    folder, version = split_version(output)
    return join(join(folder, STAGING_DIR), version)


def _files_under(folder: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([join(folder, "**")])[0].metadata_list)


def remove_tree(folder: str) -> None:
    """Delete every file under ``folder``, then the folder: object stores (gs://) have no folders,
    so a folder's existence cannot be asked, only its files listed."""
    files = _files_under(folder)
    if files:
        FileSystems.delete(files)
    if FileSystems.exists(folder):
        FileSystems.delete([folder])


def prepare_output(output: str, overwrite: bool = False) -> str:
    """Claim version ``output`` and return the staging folder the run writes into.

    A published version (one with a manifest) is immutable: refused. A leftover of an interrupted
    run (its staging folder, or a version folder still marked as publishing) is cleared, so the
    rerun starts clean. ``overwrite`` is refused too: it is kept only so callers that still pass
    it get the reason rather than a TypeError.
    """
    if overwrite:
        raise UsageError("--overwrite: published versions are immutable; publish a new --output version")
    split_version(output)
    if RUN_MODE["mode"] == "finalize":
        return _claim_submitted(output)
    if FileSystems.exists(join(output, manifest_schema.MANIFEST_NAME)):
        raise UsageError(
            f"--output: version {output} is already published ({manifest_schema.MANIFEST_NAME});"
            " versions are immutable, choose a new version"
        )
    if FileSystems.exists(join(output, PUBLISHING_MARKER)):
        remove_tree(output)  # an interrupted publish: never complete, never read
    elif _files_under(output):
        raise UsageError(f"--output: {output} holds files but no Sluice manifest; choose a new version folder")
    staging = staging_folder(output)
    _refuse_live_owner(output, staging)
    remove_tree(staging)  # an interrupted run's leftovers
    FileSystems.mkdirs(staging)
    _CLAIMS[staging] = claims.take(staging)
    _STAGED[staging] = output.rstrip("/")
    _CURRENT["staging"] = staging
    return staging


def _refuse_live_owner(output: str, staging: str) -> None:
    """A staging folder another live run owns is refused; a dead run's is left to be cleared."""
    claim = claims.read(staging)
    if not claim:
        return
    if claims.is_this_process(claim):
        # An earlier run of this driver process that never published (it failed): a driver runs
        # one run of a version at a time, so that run has ended and its claim is stale.
        claims.release(staging)
        return
    alive = claims.owner_alive(claim)
    if alive:
        raise UsageError(f"--output: version {output} is being written by another run (run {claim.get('run_id')},"
                         f" started {claim.get('started')}): {alive}; wait for it, or choose another version")


def _claim_submitted(output: str) -> str:
    """Finalize mode: the staging folder the submitted job wrote, checked against the job id."""
    staging = staging_folder(output)
    job_path = join(join(staging, RUN_STATS_DIR), JOB_FILE)
    if FileSystems.exists(join(output, manifest_schema.MANIFEST_NAME)):
        raise UsageError(f"--output: version {output} is already published")
    if not FileSystems.exists(job_path):
        raise UsageError(f"--output: no submitted job for {output} (no {job_path})")
    with FileSystems.open(job_path, compression_type="uncompressed") as handle:
        job = json.loads(handle.read())
    if job["job_id"] != RUN_MODE["job_id"]:
        raise UsageError(f"--dataflow_job_id: {RUN_MODE['job_id']} did not write {output}"
                         f" (its staging folder belongs to job {job['job_id']})")
    RUN_MODE["started"] = job["started"]
    _CLAIMS[staging] = claims.take(staging)  # the launcher's claim passes to the finalize step
    _STAGED[staging] = output.rstrip("/")
    _CURRENT["staging"] = staging
    return staging


def started_at() -> str:
    """The run's start: now, or in finalize mode when the submitted run started."""
    return RUN_MODE["started"] or utc_now()


class _FinishedJob:
    """A finished Dataflow job (finalize mode): its state checked, its counters from the Dataflow API."""

    def __init__(self, options, job_id: str):
        from apache_beam.runners.dataflow.dataflow_metrics import DataflowMetrics
        from apache_beam.runners.dataflow.internal import apiclient

        class _Metrics(DataflowMetrics):
            def _translate_step_name(self, internal_name):
                return internal_name  # counts are summed over steps: their names are not needed

        client = apiclient.DataflowApplicationClient(options)
        state = str(client.get_job(job_id).currentState).rsplit(".", 1)[-1]
        if state != "JOB_STATE_DONE":
            raise UsageError(f"--dataflow_job_id: job {job_id} is {state}; nothing was published")
        self._job_id = job_id
        self._metrics = _Metrics(client, self)

    def job_id(self) -> str:
        return self._job_id

    def is_in_terminal_state(self) -> bool:
        return True

    def metrics(self):
        return self._metrics


def run_pipeline(pipeline):
    """Run the job as RUN_MODE says; returns a result whose ``metrics()`` hold the job's counters.

    The staging folder's ``_run/job.json`` notes a submitted job. ``--dry_run=True`` (Dataflow)
    stops after the translation with DryRun.
    """
    from apache_beam.options.pipeline_options import TestOptions

    mode = RUN_MODE["mode"]
    if mode == "finalize":
        return _FinishedJob(pipeline.options, RUN_MODE["job_id"])
    progress.REPORTER.reset()  # this run's counts only (the tally is per process)
    result = pipeline.run()
    staging = _CURRENT["staging"]
    if pipeline.options.view_as(TestOptions).dry_run:
        raise DryRun(result, staging)
    if mode == "submit":
        job_id = result.job_id()
        if staging is not None:
            write_json_file(join(join(staging, RUN_STATS_DIR), JOB_FILE),
                            {"job_id": job_id, "started": started_at(), "version": _STAGED[staging]})
            claims.release(staging)  # the launcher exits now; its claim lapses after claims.LEASE_S
        raise Submitted(job_id)
    result.wait_until_finish()
    progress.REPORTER.print_if_changed()  # the final counts of an in-process run
    return result


def publish(staging: str, version: str) -> None:
    """Move the staged files into the version folder (marked as publishing until the manifest)."""
    if not FileSystems.exists(version):
        FileSystems.mkdirs(version)
    marker = join(version, PUBLISHING_MARKER)
    with FileSystems.create(marker) as handle:
        handle.write(staging.encode("utf-8"))
    sources = _files_under(staging)
    prefix = staging.rstrip("/") + "/"
    targets = [join(version, path[len(prefix):]) for path in sources]
    for target in sorted({t.rsplit("/", 1)[0] for t in targets}):
        if not FileSystems.exists(target):
            FileSystems.mkdirs(target)
    if sources:
        FileSystems.rename(sources, targets)
    remove_tree(staging)


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


def histograms_from_metrics(result) -> dict:
    """The job's ``sluice_hist.*`` bucket counters as ``{name: [{min, max, count}]}``."""
    values: dict = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        namespace = counter.key.metric.namespace
        if not namespace.startswith(histograms.NAMESPACE_PREFIX):
            continue
        key = (namespace[len(histograms.NAMESPACE_PREFIX):], counter.key.metric.name)
        value = counter.committed if counter.committed is not None else counter.attempted
        values[key] = values.get(key, 0) + value
    return histograms.from_counters(values)


def file_sha256(path: str) -> dict:
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


def json_bytes(value: dict) -> bytes:
    """The bytes ``write_json_file`` writes (so a manifest's sha256 is known before it is written)."""
    return json.dumps(value, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def write_json_file(path: str, value: dict) -> None:
    """Write JSON through a temporary name and rename, so readers never see half a file."""
    temporary = path + ".tmp"
    with FileSystems.create(temporary) as handle:
        handle.write(json_bytes(value))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def parent_version(model_or_folder: str) -> dict | None:
    """The published version a file comes from (its folder's manifest), for the lineage."""
    folder = model_or_folder.rstrip("/")
    if not FileSystems.exists(join(folder, manifest_schema.MANIFEST_NAME)):
        folder = folder.rsplit("/", 1)[0]
    path = join(folder, manifest_schema.MANIFEST_NAME)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path, compression_type="uncompressed") as handle:
        data = handle.read()
    parent = json.loads(data)
    return {"dataset": parent.get("dataset"), "version": parent.get("version", {}).get("name"),
            "path": folder, "manifest_sha256": hashlib.sha256(data).hexdigest(),
            "config_fingerprint": parent.get("config_fingerprint")}


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


def build_manifest(output: str, *, dataset: str, started: str, config: dict, counts: dict,
                   inputs: dict, tokenizer: dict, shards: list, parents: dict | None = None,
                   split: str | None = None, **sections) -> dict:
    """Assemble and validate the manifest of the version staged at ``output`` (not written).

    ``split`` names a subfolder of the version that is a complete dataset of its own (instruct's
    ``--all_holdouts``); its manifest's ``version`` says which.
    """
    staging = output.rstrip("/")
    version = _STAGED.get(staging, staging)
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


def publish_manifest(output: str, *, nested: dict | None = None, **fields) -> dict:
    """Assemble, validate and publish: staged files move into the version, ``manifest.json`` last.

    ``output`` is the staging folder ``prepare_output`` returned (or a version folder written in
    place). Paths inside the staging folder are recorded as their published paths. ``nested``
    (``{subfolder: manifest}``, from ``build_manifest(split=...)``) are written after the files
    moved in and before the version's own manifest, so a subfolder's manifest never precedes its
    shards and the whole version still appears at once.
    """
    manifest = build_manifest(output, **fields)
    staging = output.rstrip("/")
    version = _STAGED.get(staging, staging)
    claim = _CLAIMS.pop(staging, None)
    if claim is not None:
        claims.release(staging)
        if not claims.still_ours(staging, claim):
            raise UsageError(f"--output: another run took over {staging} while this run wrote it"
                             f" (this run's claim {claim['run_id']} is gone); nothing was published")
    remove_tree(join(staging, RUN_STATS_DIR))
    if version != staging:
        if FileSystems.exists(join(version, manifest_schema.MANIFEST_NAME)):
            raise UsageError(f"--output: version {version} was published by another run meanwhile")
        publish(staging, version)
        _STAGED.pop(staging, None)
        if _CURRENT["staging"] == staging:
            _CURRENT["staging"] = None
    for subfolder, sub_manifest in sorted((nested or {}).items()):
        write_json_file(join(join(version, subfolder), manifest_schema.MANIFEST_NAME), sub_manifest)
    write_json_file(join(version, manifest_schema.MANIFEST_NAME), manifest)
    remove(join(version, PUBLISHING_MARKER))
    return manifest


def run_main(main, argv=None) -> int:
    """Run ``main(argv)``; a UsageError or a bad flag becomes one line on stderr and exit status 2.
    An int that ``main`` returns is the exit status (e.g. ``sluice datasets verify``'s 1).

    Local runs started from the command line print their progress (transforms/stats/progress.py).
    """
    logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault(progress.ENV, progress.DEFAULT_INTERVAL_S)
    try:
        status = main(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DryRun as dry:
        if dry.staging is not None:
            claims.release(dry.staging)
            _CLAIMS.pop(dry.staging, None)
            remove_tree(dry.staging)
            _STAGED.pop(dry.staging, None)
        job = getattr(dry.result, "job", None)
        transforms = len(job.proto_pipeline.components.transforms) if job is not None else 0
        print(f"dry run: the graph translated ({transforms} transforms); nothing was submitted or published")
    except Submitted as submitted:
        print(f"submitted job {submitted.job_id}; publish it with the finalize step once it succeeds")
    else:
        return status if isinstance(status, int) and not isinstance(status, bool) else 0
    return 0
