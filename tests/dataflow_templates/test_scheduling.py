"""The scheduling recipes stay runnable: the Airflow DAG's shape and parameters, the Cloud Run job's
command line, and the Cloud Scheduler job that triggers it."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAG_FILE = os.path.join(ROOT, "dataflow_templates", "scheduling", "airflow", "sluice_codegen.py")
CODEGEN_ORDER = ["tokenizer", "nl", "multi", "mono", "instruct"]


def template_parameters(pipeline: str) -> dict:
    with open(os.path.join(ROOT, "dataflow_templates", pipeline, "metadata.json")) as handle:
        return {p["name"]: p for p in json.load(handle)["parameters"]}


@pytest.fixture(scope="module")
def dag_module():
    pytest.importorskip("airflow", reason="Apache Airflow is not installed (it runs in Cloud Composer; see README)")
    pytest.importorskip("airflow.providers.google.cloud.operators.dataflow",
                        reason="apache-airflow-providers-google is not installed")
    pytest.importorskip("airflow.providers.cncf.kubernetes.operators.pod",
                        reason="apache-airflow-providers-cncf-kubernetes is not installed")
    spec = importlib.util.spec_from_file_location("sluice_codegen", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dag_loads_with_tasks_in_codegen_order(dag_module):
    dag = dag_module.dag
    assert dag.dag_id == "sluice_codegen" and list(dag_module.PIPELINES) == CODEGEN_ORDER
    expected = [f"{p}_{step}" for p in CODEGEN_ORDER for step in ("launch", "publish", "verify")]
    assert sorted(dag.task_ids) == sorted(expected)
    for earlier, later in zip(expected, expected[1:]):  # one chain: each task waits for the one before
        assert dag.get_task(later).upstream_task_ids == {earlier}
    assert dag.get_task(expected[0]).upstream_task_ids == set()
    assert dag.max_active_runs == 1


def test_airflow_dagbag_imports_the_dag_without_errors(dag_module):
    try:  # Airflow 3
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=os.path.dirname(DAG_FILE))
    assert bag.import_errors == {} and "sluice_codegen" in bag.dags


def test_launches_use_each_templates_parameters(dag_module):
    for pipeline in CODEGEN_ORDER:
        task = dag_module.dag.get_task(f"{pipeline}_launch")
        assert task.wait_until_finished is True
        launch = task.body["launchParameter"]
        assert launch["containerSpecGcsPath"].endswith(f"/{pipeline}.json")
        params, known = launch["parameters"], template_parameters(pipeline)
        assert set(params) <= set(known), set(params) - set(known)
        assert {n for n, p in known.items() if not p["isOptional"]} <= set(params)
        for name, value in params.items():
            for regex in known[name].get("regexes", []):
                assert re.match(regex, value), (pipeline, name, value)
        assert params["output"] == f"{dag_module.ROOT}/{pipeline}/{{{{ ds }}}}"
        if pipeline != "tokenizer":
            assert params["tokenizer"] == f"{dag_module.ROOT}/tokenizer/{{{{ ds }}}}/tokenizer.model"
        assert "shuffle_mode=service" in launch["environment"]["additionalExperiments"]


def test_publish_and_verify_steps_follow_each_job(dag_module):
    for pipeline in CODEGEN_ORDER:
        publish = dag_module.dag.get_task(f"{pipeline}_publish")
        args = publish.arguments
        assert publish.cmds == ["python", "-m", "dataflow_templates.launch"]
        assert f"--pipeline={pipeline}" in args
        assert f"--dataflow_job_id={{{{ ti.xcom_pull(task_ids='{pipeline}_launch')['id'] }}}}" in args
        launch_params = dag_module.dag.get_task(f"{pipeline}_launch").body["launchParameter"]["parameters"]
        assert all(f"--{k}={v}" in args for k, v in launch_params.items())
        verify = dag_module.dag.get_task(f"{pipeline}_verify")
        assert verify.cmds == ["sluice"] and verify.arguments == ["datasets", "verify", launch_params["output"]]


def cloud_run_script():
    import yaml

    with open(os.path.join(ROOT, "dataflow_templates", "scheduling", "cloud_run", "sluice-nl.yaml")) as handle:
        job = yaml.safe_load(handle)
    container = job["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]
    return job, container


def test_cloud_run_job_runs_and_verifies_a_dated_nl_version():
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    from pipelines import nl, versions

    job, container = cloud_run_script()
    script = container["args"][0]
    lines = [line.strip() for line in script.splitlines() if line.strip()]
    assert lines[0] == "set -eu" and lines[1] == "version=$(date -u +%Y-%m-%d)"
    today = datetime.date(2026, 11, 26).isoformat()
    run = shlex.split(lines[2].replace("$version", today))
    assert run[:2] == ["sluice", "nl"]
    args, beam_args = nl.parse_args(run[2:])
    assert args.output.endswith(f"/nl/{today}") and versions.split_version(args.output)[1] == today
    options = PipelineOptions(beam_args)
    assert options.get_all_options(retain_unknown_options=True, drop_default=True).keys() <= set(
        options.get_all_options().keys())  # every flag is a Beam option, none unknown
    assert options.view_as(GoogleCloudOptions).project == "sluice-prod"
    assert shlex.split(lines[3].replace("$version", today)) == ["sluice", "datasets", "verify", args.output]
    assert container["image"].endswith("/nl:latest")


def test_cloud_scheduler_job_triggers_the_cloud_run_job():
    with open(os.path.join(ROOT, "dataflow_templates", "scheduling", "cloud_scheduler", "sluice-nl-weekly.json")) as handle:
        scheduler = json.load(handle)
    fields = scheduler["schedule"].split()
    assert len(fields) == 5 and scheduler["timeZone"] == "Etc/UTC"
    job, _ = cloud_run_script()
    target = scheduler["httpTarget"]
    assert target["httpMethod"] == "POST"
    assert target["uri"].endswith(f"/jobs/{job['metadata']['name']}:run")
    assert target["oauthToken"]["scope"].endswith("/cloud-platform")
