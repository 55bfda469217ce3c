"""One run of one dataset version: its claim, staging folder, mode, counters and publish.

A ``Run`` is made from the parsed ``--output`` and the mode its caller chose, and used as a context
manager around the job::

    with Run(args.output, mode) as run:      # claims ROOT/DATASET/_staging/VERSION
        ...graph writing under run.staging...
        result = run.execute(pipeline)       # run / submit / finalize / dry run
        run.publish(run.manifest(dataset=..., counts=run.counts(result), ...))

How the driver runs its job (``RunMode``): "run" runs and waits, then publishes (local runs,
direct Dataflow launches). A Flex Template's launcher must not wait for the job, so it runs in
"submit" mode (submit, note the job in staging, stop) and a later "finalize" step (the DAG's, after
the job succeeded) rebuilds the same driver, takes the counts from the finished job and publishes.
"check" runs nothing: the driver stops at its ``--if_changed`` check (``pipelines/fingerprints.py``)
and reports it, before any Run is made.
A run that fails keeps its staging folder, for the rerun to clear; a dry run removes it.
"""

from __future__ import annotations

import dataclasses

from apache_beam.io.filesystems import FileSystems

from pipelines import claims, versions
from pipelines.driver import DryRun, Submitted, UsageError
from pipelines.job_metrics import FinishedJob, counts_from_metrics, histograms_from_metrics
from pipelines.manifests import build_manifest, utc_now
from schemas import manifest as manifest_schema
from schemas.files import join
from transforms.stats import progress
from transforms.stats.run_stats import read_json

MODES = ("run", "submit", "finalize", "check")


@dataclasses.dataclass(frozen=True)
class RunMode:
    """How a driver runs its job; ``job_id`` names the finished job a finalize step publishes."""

    mode: str = "run"
    job_id: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"run mode must be one of {MODES}, got {self.mode!r}")
        if (self.mode == "finalize") != bool(self.job_id):
            raise ValueError("a finalize run, and only it, names the job id it publishes")


RUN = RunMode()


class Run:
    """One run of the version ``output`` (ROOT/DATASET/VERSION), in ``mode``.

    ``fingerprints`` (``pipelines.fingerprints.Fingerprints``, computed before the job) go in the
    manifest; a submitted job notes them for its finalize step, which publishes those, not its own.
    """

    def __init__(self, output: str, mode: RunMode = RUN, fingerprints=None):
        versions.split_version(output)
        if mode.mode == "check":
            raise ValueError("a check-only run stops at its check, before a Run is made")
        self.version = output.rstrip("/")
        self.staging = versions.staging_folder(output)
        self.mode = mode
        self.started: str | None = None
        self.fingerprints = fingerprints.section() if fingerprints is not None else None
        self._claim: claims.Claim | None = None

    @property
    def stats_dir(self) -> str:
        """Scratch statistics the job hands the driver; removed before the version is published."""
        return join(self.staging, versions.RUN_STATS_DIR)

    def stats_path(self, name: str) -> str:
        return join(self.stats_dir, name)

    def __enter__(self) -> "Run":
        if self.mode.mode == "finalize":
            self._claim_submitted()
        else:
            self._claim_new()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        self._release()
        if isinstance(error, DryRun):
            versions.remove_tree(self.staging)
        return False

    def _release(self) -> None:
        if self._claim is not None:
            self._claim.release()

    def _claim_new(self) -> None:
        """Claim the version: a published one (with a manifest) is immutable and refused; the
        leftover of an interrupted run (its staging folder, or a version folder still marked as
        publishing) is cleared, so the rerun starts clean."""
        if FileSystems.exists(join(self.version, manifest_schema.MANIFEST_NAME)):
            raise UsageError(
                f"--output: version {self.version} is already published ({manifest_schema.MANIFEST_NAME});"
                " versions are immutable, choose a new version"
            )
        if FileSystems.exists(join(self.version, versions.PUBLISHING_MARKER)):
            versions.remove_tree(self.version)  # an interrupted publish: never complete, never read
        elif versions.files_under(self.version):
            raise UsageError(f"--output: {self.version} holds files but no Sluice manifest;"
                             " choose a new version folder")
        self._refuse_live_owner()
        versions.remove_tree(self.staging)  # an interrupted run's leftovers
        FileSystems.mkdirs(self.staging)
        self._claim = claims.Claim.take(self.staging)
        self.started = utc_now()

    def _refuse_live_owner(self) -> None:
        """A staging folder another live run owns is refused; a dead run's is left to be cleared.

        An earlier run of this driver process that never published (it failed) has ended, since a
        driver runs one run of a version at a time: its claim is stale."""
        claim = claims.read(self.staging)
        if not claim or claims.is_this_process(claim):
            return
        alive = claims.owner_alive(claim)
        if alive:
            raise UsageError(f"--output: version {self.version} is being written by another run (run"
                             f" {claim.get('run_id')}, started {claim.get('started')}): {alive}; wait for it,"
                             " or choose another version")

    def _claim_submitted(self) -> None:
        """Finalize mode: the staging folder the submitted job wrote, checked against the job id."""
        job_path = self.stats_path(versions.JOB_FILE)
        if FileSystems.exists(join(self.version, manifest_schema.MANIFEST_NAME)):
            raise UsageError(f"--output: version {self.version} is already published")
        if not FileSystems.exists(job_path):
            raise UsageError(f"--output: no submitted job for {self.version} (no {job_path})")
        job = read_json(job_path)
        if job["job_id"] != self.mode.job_id:
            raise UsageError(f"--dataflow_job_id: {self.mode.job_id} did not write {self.version}"
                             f" (its staging folder belongs to job {job['job_id']})")
        self.started = job["started"]
        self.fingerprints = job.get("fingerprints", self.fingerprints)  # those computed before the job
        self._claim = claims.Claim.take(self.staging)  # the launcher's claim passes to the finalize step

    def execute(self, pipeline):
        """Run the job as the mode says; returns a result whose ``metrics()`` hold the job's counters.

        Submit mode notes the job in ``_run/job.json`` and stops with Submitted; ``--dry_run=True``
        (Dataflow) stops after the translation with DryRun.
        """
        from apache_beam.options.pipeline_options import TestOptions

        if self.mode.mode == "finalize":
            return FinishedJob(pipeline.options, self.mode.job_id)
        progress.REPORTER.reset()  # this run's counts only (the tally is per process)
        result = pipeline.run()
        if pipeline.options.view_as(TestOptions).dry_run:
            raise DryRun(result)
        if self.mode.mode == "submit":
            job_id = result.job_id()
            versions.write_json_file(self.stats_path(versions.JOB_FILE),
                                     {"job_id": job_id, "started": self.started, "version": self.version,
                                      "fingerprints": self.fingerprints})
            self._release()  # the launcher exits now; its claim lapses after claims.LEASE_S
            raise Submitted(job_id)
        result.wait_until_finish()
        progress.REPORTER.print_if_changed()  # the final counts of an in-process run
        return result

    @staticmethod
    def counts(result) -> dict:
        return counts_from_metrics(result)

    @staticmethod
    def histograms(result) -> dict:
        return histograms_from_metrics(result)

    def manifest(self, **fields) -> dict:
        """The validated manifest of this version (or of its ``split=`` subfolder), not written."""
        if self.fingerprints is not None:
            fields.setdefault("fingerprints", self.fingerprints)
        return build_manifest(self.version, self.staging, started=self.started, **fields)

    def publish(self, manifest: dict, nested: dict | None = None) -> dict:
        """Move the staged files into the version, then write the manifests, ``manifest.json`` last.

        ``nested`` (``{subfolder: manifest}``, from ``manifest(split=...)``) are written after the
        files moved in and before the version's own manifest, so a subfolder's manifest never
        precedes its shards and the whole version still appears at once.
        """
        self._release()
        if self._claim is not None and not self._claim.still_ours():
            raise UsageError(f"--output: another run took over {self.staging} while this run wrote it"
                             f" (this run's claim {self._claim.run_id} is gone); nothing was published")
        versions.remove_tree(self.stats_dir)
        if FileSystems.exists(join(self.version, manifest_schema.MANIFEST_NAME)):
            raise UsageError(f"--output: version {self.version} was published by another run meanwhile")
        versions.move_into_version(self.staging, self.version)
        self._claim = None
        for subfolder, sub_manifest in sorted((nested or {}).items()):
            versions.write_json_file(join(join(self.version, subfolder), manifest_schema.MANIFEST_NAME),
                                     sub_manifest)
        versions.write_json_file(join(self.version, manifest_schema.MANIFEST_NAME), manifest)
        versions.remove(join(self.version, versions.PUBLISHING_MARKER))
        return manifest
