"""Cloud Composer (Apache Airflow) DAG: train and publish a new tokenizer version, by hand.

A tokenizer is a long-lived artifact: every corpus of the weekly ``sluice_codegen`` DAG is tokenized
with the one version its SLUICE_TOKENIZER names, and a checkpoint only continues on data of its own
tokenizer. So this DAG has no schedule: trigger it with a version name (the ``version`` parameter,
e.g. ``v2``), and it trains SentencePiece on the Mono manifest (launch), publishes
ROOT/tokenizer/<version> (publish) and checks its files against the manifest (verify). It tags
nothing: the weekly corpora move to the new version only when a person promotes it (README,
"Scheduled runs"), since that starts corpora that earlier checkpoints cannot continue on.
"""

from __future__ import annotations

import datetime
import os

try:  # Airflow 3 (Composer 3)
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param

import sluice_common

SETTINGS = sluice_common.settings(os.environ, need_tokenizer=False)
ROOT = SETTINGS.root
# A version name that also ends in a letter or digit, so it can end a Dataflow job name.
VERSION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._+-]{0,126}[A-Za-z0-9])?$"
VERSION = "{{ params.version }}"

PARAMETERS = {"source": "mono", "input": SETTINGS.mono_manifest, "vocab_size": "32000",
              "sample_docs": "1000000", "output": f"{ROOT}/tokenizer/{VERSION}"}

with DAG(
    dag_id="sluice_tokenizer",
    description="A new Sluice tokenizer version ROOT/tokenizer/<version>, trained on the Mono manifest;"
                " triggered by hand",
    schedule=None,  # by hand only: a new tokenizer is a decision, not a weekly by-product
    start_date=datetime.datetime(2026, 1, 5),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    params={"version": Param(type="string", pattern=VERSION_PATTERN,
                             description="The new tokenizer version's name, e.g. v2: ROOT/tokenizer/<version>"
                                         " must not exist (versions are immutable)")},
    user_defined_filters={"job_name_part": sluice_common.job_name_part},
    tags=["sluice", "dataflow", "tokenizer"],
) as dag:
    sluice_common.run_tasks(SETTINGS, "tokenizer", PARAMETERS,
                            job_name="sluice-tokenizer-{{ params.version | job_name_part }}")
