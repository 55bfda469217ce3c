"""Cloud Composer (Apache Airflow) DAG: Sluice's CodeGen datasets, one version per run date.

Order is CodeGen's: the tokenizer, then NL, Multi and Mono, then the instruction mixtures (every
leave-one-cluster-out split in one version, ROOT/instruct/<run date>/holdout-<cluster>/, its code
tasks curated from the same Mono manifest). Each pipeline is three tasks:

* ``<p>_launch``: its Flex Template (``dataflow_templates/<p>``), which submits the Dataflow job
  into the version's staging folder; the operator waits for the job and fails the run if it fails.
  A template's launcher must not wait for its own job, hence the separate publish step.
* ``<p>_publish``: the same image and parameters with ``--dataflow_job_id``: takes the counts from
  the finished job and publishes ROOT/<p>/<run date> (manifest last). It fails if the job did not
  succeed or the version already exists (versions are immutable: a rerun of a published date fails
  rather than overwrite it).
* ``<p>_verify``: ``sluice datasets verify``: every shard's sha256 and record count against the
  manifest (for instruct, every split's manifest and shards); a mismatch fails the run before the
  next pipeline reads the version.

Settings come from the environment (Composer's environment variables), read once at parse time.
"""

from __future__ import annotations

import datetime
import os

try:  # Airflow 3 (Composer 3)
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

PROJECT = os.environ.get("SLUICE_PROJECT", "sluice-prod")
REGION = os.environ.get("SLUICE_REGION", "us-central1")
ROOT = os.environ.get("SLUICE_DATASET_ROOT", "gs://sluice-datasets")  # ROOT/DATASET/VERSION
TEMPLATES = os.environ.get("SLUICE_TEMPLATES", "gs://sluice-dataflow/templates")  # <p>.json specs
IMAGES = os.environ.get("SLUICE_IMAGES", f"{REGION}-docker.pkg.dev/{PROJECT}/sluice")  # <p>:TAG images
IMAGE_TAG = os.environ.get("SLUICE_IMAGE_TAG", "latest")
SERVICE_ACCOUNT = os.environ.get("SLUICE_SERVICE_ACCOUNT", f"sluice-dataflow@{PROJECT}.iam.gserviceaccount.com")
SCRATCH = os.environ.get("SLUICE_SCRATCH", "gs://sluice-dataflow")  # temp and staging locations
MONO_MANIFEST = os.environ.get("SLUICE_MONO_MANIFEST", "gs://sluice-inputs/github/manifest.jsonl")
PILE_FILES = os.environ.get("SLUICE_PILE_FILES", "gs://sluice-inputs/pile/train/*.jsonl.zst")
MULTI_EXPORT = os.environ.get("SLUICE_MULTI_EXPORT", "gs://sluice-inputs/multi/export/*.parquet")
# The task registry (schemas/instruct.py); its relative source paths are relative to its folder.
INSTRUCT_TASKS = os.environ.get("SLUICE_INSTRUCT_TASKS", "gs://sluice-inputs/instruct/tasks.yaml")

VERSION = "{{ ds }}"  # the run date, YYYY-MM-DD: a valid, sortable version name
TOKENIZER_MODEL = f"{ROOT}/tokenizer/{VERSION}/tokenizer.model"

# CodeGen's order. Parameters are the template's (generated from each pipeline's flags).
PIPELINES = {
    "tokenizer": {"source": "mono", "input": MONO_MANIFEST, "vocab_size": "32000", "sample_docs": "1000000"},
    "nl": {"input": PILE_FILES, "tokenizer": TOKENIZER_MODEL, "num_shards": "1024"},
    "multi": {"bigquery_export": MULTI_EXPORT, "tokenizer": TOKENIZER_MODEL, "num_shards": "512"},
    "mono": {"input": MONO_MANIFEST, "tokenizer": TOKENIZER_MODEL, "num_shards": "256"},
    "instruct": {"tasks": INSTRUCT_TASKS, "tokenizer": TOKENIZER_MODEL, "all_holdouts": "true",
                 "num_shards": "64", "write_examples": "true"},
}
# Worker settings that matter for this workload: memory for a shard's sort (highmem), service
# shuffle for the global shuffle and dedup joins, disks for the spill, a bounded fleet.
ENVIRONMENT = {
    "machineType": "n2-highmem-8",
    "maxWorkers": 64,
    "diskSizeGb": 200,
    "additionalExperiments": ["shuffle_mode=service"],
    "serviceAccountEmail": SERVICE_ACCOUNT,
    "tempLocation": f"{SCRATCH}/tmp",
    "stagingLocation": f"{SCRATCH}/staging",
}


def image(pipeline: str) -> str:
    return f"{IMAGES}/{pipeline}:{IMAGE_TAG}"


def parameters(pipeline: str) -> dict:
    return {**PIPELINES[pipeline], "output": f"{ROOT}/{pipeline}/{VERSION}"}


def as_flags(params: dict) -> list[str]:
    return [f"--{name}={value}" for name, value in params.items()]


def pipeline_tasks(pipeline: str):
    launch = DataflowStartFlexTemplateOperator(
        task_id=f"{pipeline}_launch",
        project_id=PROJECT,
        location=REGION,
        wait_until_finished=True,
        body={"launchParameter": {
            "jobName": f"sluice-{pipeline}-{{{{ ds_nodash }}}}",
            "containerSpecGcsPath": f"{TEMPLATES}/{pipeline}.json",
            "parameters": parameters(pipeline),
            "environment": {**ENVIRONMENT, "sdkContainerImage": image(pipeline)},
        }},
    )
    publish = KubernetesPodOperator(
        task_id=f"{pipeline}_publish",
        name=f"sluice-{pipeline}-publish",
        image=image(pipeline),
        cmds=["python", "-m", "dataflow_templates.launch"],
        arguments=[f"--pipeline={pipeline}",
                   f"--dataflow_job_id={{{{ ti.xcom_pull(task_ids='{pipeline}_launch')['id'] }}}}",
                   *as_flags(parameters(pipeline)), f"--project={PROJECT}", f"--region={REGION}"],
        get_logs=True,
    )
    verify = KubernetesPodOperator(
        task_id=f"{pipeline}_verify",
        name=f"sluice-{pipeline}-verify",
        image=image(pipeline),
        cmds=["sluice"],
        arguments=["datasets", "verify", parameters(pipeline)["output"]],
        get_logs=True,
    )
    launch >> publish >> verify
    return launch, verify


with DAG(
    dag_id="sluice_codegen",
    description="Sluice's CodeGen datasets (tokenizer, NL, Multi, Mono, instruction mixtures) as immutable"
                " versions per run date",
    schedule="@weekly",
    start_date=datetime.datetime(2026, 1, 5),
    catchup=False,
    max_active_runs=1,  # one run at a time: the next pipeline reads the previous one's version
    default_args={"retries": 0},  # a failed job or check fails the run; a rerun is a human decision
    tags=["sluice", "dataflow"],
) as dag:
    previous = None
    for name in PIPELINES:
        first, last = pipeline_tasks(name)
        if previous is not None:
            previous >> first
        previous = last
