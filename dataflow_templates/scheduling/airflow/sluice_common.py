"""What Sluice's two Composer DAGs share: their settings and the tasks of one pipeline run.

Composer puts its DAG folder on ``sys.path``, so ``sluice_codegen.py`` (the weekly corpora) and
``sluice_tokenizer.py`` (a new tokenizer, by hand) import this file beside them; it defines no DAG.
It imports nothing of Sluice: the DAGs run in Composer's own environment, Sluice runs in its images.

Settings are environment variables (Composer's), read once when a DAG file is parsed. A setting
that would make a run unreproducible (no tokenizer version, a floating image tag) is refused with
one line, so the DAG shows one import error instead of running with it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

# pipelines/versions.py's VERSION_NAME; an alias is the same name after "@" (schemas/dataset_version.py).
VERSION = r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}"
# ROOT/tokenizer/VERSION or ROOT/tokenizer/@ALIAS: a published tokenizer version, never a model file,
# so each corpus manifest names the version its tokens came from.
TOKENIZER_VERSION = re.compile(rf".+/tokenizer/@?{VERSION}/?")
# Docker's tag grammar (distribution/reference).
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# Tasks that need a version of Sluice's own: "latest" moves under a run, so no run could be repeated.
FLOATING_TAGS = {"latest"}

log = logging.getLogger(__name__)


class SettingError(ValueError):
    """A setting the DAG cannot run with; its message is the one line the import error shows."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a DAG reads from the environment, validated."""

    project: str
    region: str
    root: str  # ROOT/DATASET/VERSION
    templates: str  # <pipeline>.json Flex Template specs
    images: str  # <pipeline>:TAG images
    image_tag: str  # Sluice's version, e.g. 0.1.0
    service_account: str
    scratch: str  # Dataflow's temp and staging locations
    tokenizer: str | None  # ROOT/tokenizer/VERSION or ROOT/tokenizer/@ALIAS (the weekly corpora need one)
    mono_manifest: str
    pile_files: str
    multi_export: str
    instruct_tasks: str  # the task registry (schemas/instruct.py); its relative paths are relative to it

    def image(self, pipeline: str) -> str:
        return f"{self.images}/{pipeline}:{self.image_tag}"

    def dataflow_environment(self, pipeline: str) -> dict:
        """Worker settings that matter for this workload: memory for a shard's sort (highmem), service
        shuffle for the global shuffle and dedup joins, disks for the spill, a bounded fleet, and the
        pipeline's own image on the workers (nothing installed at start-up)."""
        return {
            "machineType": "n2-highmem-8",
            "maxWorkers": 64,
            "diskSizeGb": 200,
            "additionalExperiments": ["shuffle_mode=service"],
            "serviceAccountEmail": self.service_account,
            "tempLocation": f"{self.scratch}/tmp",
            "stagingLocation": f"{self.scratch}/staging",
            "sdkContainerImage": self.image(pipeline),
        }


def image_tag(environ: Mapping[str, str]) -> str:
    """SLUICE_IMAGE_TAG: required, a pinned tag (Sluice's version), never ``latest``."""
    tag = environ.get("SLUICE_IMAGE_TAG", "").strip()
    if not tag:
        raise SettingError("SLUICE_IMAGE_TAG is not set: set it to the Sluice version whose images"
                           " the DAG runs (e.g. 0.1.0)")
    if tag.lower() in FLOATING_TAGS:
        raise SettingError(f"SLUICE_IMAGE_TAG={tag} floats: set it to the Sluice version whose images"
                           " the DAG runs (e.g. 0.1.0), so a rerun runs the same code")
    if not IMAGE_TAG.fullmatch(tag):
        raise SettingError(f"SLUICE_IMAGE_TAG={tag} is not an image tag (letters, digits, _ . -)")
    return tag


def tokenizer_version(environ: Mapping[str, str]) -> str:
    """SLUICE_TOKENIZER: required, ROOT/tokenizer/VERSION or ROOT/tokenizer/@ALIAS."""
    value = environ.get("SLUICE_TOKENIZER", "").strip()
    if not value:
        raise SettingError("SLUICE_TOKENIZER is not set: set it to a published tokenizer version,"
                           " ROOT/tokenizer/VERSION or ROOT/tokenizer/@ALIAS (the sluice_tokenizer DAG"
                           " trains one)")
    if not TOKENIZER_VERSION.fullmatch(value):
        raise SettingError(f"SLUICE_TOKENIZER={value} is not a tokenizer version: expected"
                           " ROOT/tokenizer/VERSION or ROOT/tokenizer/@ALIAS")
    return value.rstrip("/")


def settings(environ: Mapping[str, str], *, need_tokenizer: bool) -> Settings:
    """The settings from ``environ``, or a SettingError naming the first one the DAG cannot run with."""
    project = environ.get("SLUICE_PROJECT", "sluice-prod")
    region = environ.get("SLUICE_REGION", "us-central1")
    return Settings(
        project=project,
        region=region,
        root=environ.get("SLUICE_DATASET_ROOT", "gs://sluice-datasets").rstrip("/"),
        templates=environ.get("SLUICE_TEMPLATES", "gs://sluice-dataflow/templates"),
        images=environ.get("SLUICE_IMAGES", f"{region}-docker.pkg.dev/{project}/sluice"),
        image_tag=image_tag(environ),
        service_account=environ.get("SLUICE_SERVICE_ACCOUNT",
                                    f"sluice-dataflow@{project}.iam.gserviceaccount.com"),
        scratch=environ.get("SLUICE_SCRATCH", "gs://sluice-dataflow"),
        tokenizer=tokenizer_version(environ) if need_tokenizer else None,
        mono_manifest=environ.get("SLUICE_MONO_MANIFEST", "gs://sluice-inputs/github/manifest.jsonl"),
        pile_files=environ.get("SLUICE_PILE_FILES", "gs://sluice-inputs/pile/train/*.jsonl.zst"),
        multi_export=environ.get("SLUICE_MULTI_EXPORT", "gs://sluice-inputs/multi/export/*.parquet"),
        instruct_tasks=environ.get("SLUICE_INSTRUCT_TASKS", "gs://sluice-inputs/instruct/tasks.yaml"),
    )


def as_flags(params: Mapping[str, str]) -> list[str]:
    """Template parameters as the pipeline's command line (``--name=value``, as the launcher passes them)."""
    return [f"--{name}={value}" for name, value in params.items()]


def job_name_part(value: str) -> str:
    """A Jinja filter: a version as part of a Dataflow job name (lower case letters, digits and -)."""
    return re.sub(r"[^a-z0-9-]", "-", value.lower())


def pod(settings: Settings, pipeline: str, step: str, cmds: list[str], arguments: list[str],
        **kwargs) -> KubernetesPodOperator:
    """One step in the pipeline's image (the same code as its template's launcher and workers)."""
    return KubernetesPodOperator(
        task_id=f"{pipeline}_{step}",
        name=f"sluice-{pipeline}-{step}",
        image=settings.image(pipeline),
        cmds=cmds,
        arguments=arguments,
        get_logs=True,
        **kwargs,
    )


def run_tasks(settings: Settings, pipeline: str, params: Mapping[str, str], job_name: str,
              publish_flags: tuple[str, ...] = ()):
    """Launch, publish and verify one version: ``params`` are the template's, ``output`` included.

    * ``<p>_launch``: the Flex Template submits the Dataflow job into the version's staging folder;
      the operator waits for the job and fails the run if it fails. A template's launcher must not
      wait for its own job, hence the separate publish step.
    * ``<p>_publish``: the same image and parameters with ``--dataflow_job_id``: takes the counts
      from the finished job and publishes the version (manifest last); it fails if the job did not
      succeed or the version exists (versions are immutable).
    * ``<p>_verify``: ``sluice datasets verify``: every file the manifest lists, by size, sha256 and
      record count; a mismatch fails the run before anything reads the version.
    """
    launch = DataflowStartFlexTemplateOperator(
        task_id=f"{pipeline}_launch",
        project_id=settings.project,
        location=settings.region,
        wait_until_finished=True,
        body={"launchParameter": {
            "jobName": job_name,
            "containerSpecGcsPath": f"{settings.templates}/{pipeline}.json",
            "parameters": dict(params),
            "environment": settings.dataflow_environment(pipeline),
        }},
    )
    publish = pod(settings, pipeline, "publish", ["python", "-m", "dataflow_templates.launch"], [
        f"--pipeline={pipeline}",
        f"--dataflow_job_id={{{{ ti.xcom_pull(task_ids='{pipeline}_launch')['id'] }}}}",
        *as_flags(params), *publish_flags, f"--project={settings.project}", f"--region={settings.region}"])
    verify = pod(settings, pipeline, "verify", ["sluice"], ["datasets", "verify", params["output"]])
    launch >> publish >> verify
    return launch, verify


def check_task(settings: Settings, pipeline: str, params: Mapping[str, str],
               trigger_rule: str = "all_success") -> KubernetesPodOperator:
    """``<p>_check``: would this run publish anything new? The pipeline's own check (same flags, nothing
    run or claimed) compares its config and input fingerprints with the newest published version and
    writes ``{"changed": bool, "same_as": ...}`` to /airflow/xcom/return.json, the pod's XCom."""
    return pod(settings, pipeline, "check", ["python", "-m", "dataflow_templates.launch"], [
        f"--pipeline={pipeline}", "--check_if_changed", *as_flags(params),
        f"--project={settings.project}", f"--region={settings.region}"], do_xcom_push=True,
        trigger_rule=trigger_rule)


def changed(pipeline: str, result) -> bool:
    """Whether ``<p>_check``'s result says the dataset changed; a malformed result fails the task
    (a missing check must never pass as "unchanged" and silently skip a week)."""
    if not isinstance(result, dict) or not isinstance(result.get("changed"), bool):
        raise ValueError(f"{pipeline}_check returned {result!r}, expected {{\"changed\": true|false, ...}}")
    if not result["changed"]:
        log.info("%s unchanged: same config and inputs as %s; its launch, publish, verify and tag are"
                 " skipped", pipeline, result.get("same_as"))
    return result["changed"]


def changed_from_check(pipeline: str, ti) -> bool:
    """``<p>_changed``'s callable: the check task's XCom, judged by ``changed``."""
    return changed(pipeline, ti.xcom_pull(task_ids=f"{pipeline}_check"))
