"""Cloud Composer (Apache Airflow) DAG: Sluice's CodeGen corpora, weekly, one version per run date.

Order is CodeGen's: NL, Multi and Mono, then the instruction mixtures (every leave-one-cluster-out
split in one version, ROOT/instruct/<run date>/holdout-<cluster>/, its code tasks curated from the
same Mono manifest). All of them are tokenized with one pinned tokenizer version, SLUICE_TOKENIZER
(ROOT/tokenizer/VERSION or ROOT/tokenizer/@ALIAS): this DAG never trains one, so every week's
versions fit checkpoints trained on earlier weeks. A new tokenizer is the hand-triggered
``sluice_tokenizer`` DAG's, and a human's decision to switch.

Each pipeline is six tasks (``sluice_common.py``):

* ``<p>_check``: the pipeline's ``--check_if_changed`` with the run's flags: did its config or inputs
  change since the newest published version? Seconds, nothing submitted.
* ``<p>_changed``: skips this pipeline's next four tasks when nothing changed (this week's version
  would equal that one); the next pipeline's check still runs.
* ``<p>_launch``, ``<p>_publish`` (with ``--if_changed``), ``<p>_verify``: the job, its version
  ROOT/<p>/<run date>, and every file of it checked against the manifest.
* ``<p>_tag``: ``sluice datasets tag ROOT/<p>/<run date> latest``: ROOT/<p>/@latest names the
  newest verified version, for training jobs and people.

A failed task fails the run: the next pipeline's check runs after a skipped pipeline, never after a
failed one. One run at a time.
"""

from __future__ import annotations

import datetime
import os

try:  # Airflow 3 (Composer 3)
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
try:
    from airflow.providers.standard.operators.python import ShortCircuitOperator
except ImportError:  # Airflow 2 without the standard provider
    from airflow.operators.python import ShortCircuitOperator

import sluice_common

SETTINGS = sluice_common.settings(os.environ, need_tokenizer=True)
ROOT = SETTINGS.root
VERSION = "{{ ds }}"  # the run date, YYYY-MM-DD: a valid, sortable version name

# CodeGen's order. Parameters are the template's (generated from each pipeline's flags).
PIPELINES = {
    "nl": {"input": SETTINGS.pile_files, "tokenizer": SETTINGS.tokenizer, "num_shards": "1024"},
    "multi": {"bigquery_export": SETTINGS.multi_export, "tokenizer": SETTINGS.tokenizer, "num_shards": "512"},
    "mono": {"input": SETTINGS.mono_manifest, "tokenizer": SETTINGS.tokenizer, "num_shards": "256"},
    "instruct": {"tasks": SETTINGS.instruct_tasks, "tokenizer": SETTINGS.tokenizer, "all_holdouts": "true",
                 "num_shards": "64", "write_examples": "true"},
}


def parameters(pipeline: str) -> dict:
    return {**PIPELINES[pipeline], "output": f"{ROOT}/{pipeline}/{VERSION}"}


def pipeline_tasks(pipeline: str, after_another: bool):
    """check -> changed -> launch -> publish -> verify -> tag; returns the first and the last.

    The check of a pipeline that follows another runs once that one has finished or been skipped
    (unchanged), never after it failed: ``none_failed``.
    """
    params = parameters(pipeline)
    check = sluice_common.check_task(SETTINGS, pipeline, params,
                                     trigger_rule="none_failed" if after_another else "all_success")
    # Skips launch only; publish, verify and tag follow by their own (all_success) trigger rule.
    gate = ShortCircuitOperator(
        task_id=f"{pipeline}_changed",
        python_callable=sluice_common.changed_from_check,
        op_kwargs={"pipeline": pipeline},
        ignore_downstream_trigger_rules=False,
    )
    launch, verify = sluice_common.run_tasks(
        SETTINGS, pipeline, params, job_name=f"sluice-{pipeline}-{{{{ ds_nodash }}}}",
        publish_flags=("--if_changed",))
    tag = sluice_common.pod(SETTINGS, pipeline, "tag", ["sluice"],
                            ["datasets", "tag", params["output"], "latest"])
    check >> gate >> launch
    verify >> tag
    return check, tag


with DAG(
    dag_id="sluice_codegen",
    description="Sluice's CodeGen corpora (NL, Multi, Mono, instruction mixtures) with a pinned tokenizer,"
                " a version per run date when their inputs or config changed",
    schedule="@weekly",
    start_date=datetime.datetime(2026, 1, 5),
    catchup=False,
    max_active_runs=1,  # one run at a time: checks compare against the versions earlier runs published
    default_args={"retries": 0},  # a failed job or check fails the run; a rerun is a human decision
    tags=["sluice", "dataflow"],
) as dag:
    previous = None
    for name in PIPELINES:
        first, last = pipeline_tasks(name, after_another=previous is not None)
        if previous is not None:
            previous >> first
        previous = last
