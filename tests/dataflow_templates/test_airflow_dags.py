"""The Composer DAGs, loaded by Airflow itself: imports, task graph and order, trigger rules, the
parameters against each template, rendered templates, one run at a time, and the settings they refuse.

They need Airflow and its providers, which Sluice's .venv does not have: `make test-airflow` runs
them in their own environment (.ci/airflow-venv), as CI does, and there a missing Airflow fails
instead of skipping (SLUICE_AIRFLOW_TESTS=required).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DAG_FOLDER = os.path.join(ROOT, "dataflow_templates", "scheduling", "airflow")
CODEGEN_ORDER = ["nl", "multi", "mono", "instruct"]
STEPS = ["check", "changed", "launch", "publish", "verify", "tag"]
SETTINGS = {"SLUICE_IMAGE_TAG": "0.1.0", "SLUICE_TOKENIZER": "gs://sluice-datasets/tokenizer/v1",
            "SLUICE_DATASET_ROOT": "gs://sluice-datasets"}
RUN = {"ds": "2026-12-07", "ds_nodash": "20261207"}
JOB_ID = "2026-12-07_03_00_00-1234567890"


def airflow_or_skip():
    """Skip without Airflow, except where the caller requires these tests (CI's make test-airflow)."""
    for module in ("airflow", "airflow.providers.google.cloud.operators.dataflow",
                   "airflow.providers.cncf.kubernetes.operators.pod"):
        try:
            importlib.import_module(module)
        except ImportError as err:
            if os.environ.get("SLUICE_AIRFLOW_TESTS") == "required":
                pytest.fail(f"SLUICE_AIRFLOW_TESTS=required but {module} does not import ({err})")
            pytest.skip("Apache Airflow is not in this environment: `make test-airflow` runs these tests")


@pytest.fixture
def load(monkeypatch):
    """load(name, **settings): the DAG file ``name`` imported afresh with exactly these SLUICE_* settings."""
    airflow_or_skip()
    monkeypatch.syspath_prepend(DAG_FOLDER)  # Composer puts its DAG folder on sys.path

    def load(name: str, **settings):
        for key in [k for k in os.environ if k.startswith("SLUICE_") and k != "SLUICE_AIRFLOW_TESTS"]:
            monkeypatch.delenv(key)
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        spec = importlib.util.spec_from_file_location(f"{name}_under_test", os.path.join(DAG_FOLDER, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def codegen(load):
    return load("sluice_codegen", **SETTINGS)


@pytest.fixture
def tokenizer_dag(load):
    return load("sluice_tokenizer", **SETTINGS)


@pytest.fixture
def dagbag(monkeypatch):
    """dagbag(**settings): Airflow's DagBag of the DAG folder under these settings."""
    airflow_or_skip()
    try:  # Airflow 3
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag
    monkeypatch.syspath_prepend(DAG_FOLDER)

    def dagbag(**settings):
        for key in [k for k in os.environ if k.startswith("SLUICE_") and k != "SLUICE_AIRFLOW_TESTS"]:
            monkeypatch.delenv(key)
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        return DagBag(dag_folder=DAG_FOLDER)  # AIRFLOW__CORE__LOAD_EXAMPLES=False: ours only

    return dagbag


def template_parameters(pipeline: str) -> dict:
    with open(os.path.join(ROOT, "dataflow_templates", pipeline, "metadata.json")) as handle:
        return {p["name"]: p for p in json.load(handle)["parameters"]}


class TaskInstance:
    """What a rendered template reads of the running task instance: the launch's XCom (the job)."""

    def xcom_pull(self, task_ids):
        assert task_ids.endswith("_launch"), task_ids
        return {"id": JOB_ID}


def rendered(dag, task_id: str, **context):
    """A copy of the task with its templated fields rendered by Airflow, in the DAG's Jinja environment."""
    task = copy.deepcopy(dag.get_task(task_id))
    task.render_template_fields({**RUN, "ti": TaskInstance(), "params": {}, **context})
    return task


def assert_no_template_left(value):
    assert "{{" not in json.dumps(value, default=str), value


# The DAGs in Airflow's DagBag.

def test_dagbag_imports_both_dags_without_errors(dagbag):
    bag = dagbag(**SETTINGS)
    assert bag.import_errors == {}
    assert {"sluice_codegen", "sluice_tokenizer"} <= set(bag.dags)
    # .airflowignore keeps the shared module out of the parse: it defines no DAG.
    assert {os.path.basename(path) for path in bag.file_last_changed} == {"sluice_codegen.py", "sluice_tokenizer.py"}


def test_a_missing_tokenizer_version_fails_the_weekly_dag_import_with_one_line(dagbag):
    bag = dagbag(SLUICE_IMAGE_TAG="0.1.0")
    errors = {os.path.basename(path): message for path, message in bag.import_errors.items()}
    assert set(errors) == {"sluice_codegen.py"}  # the tokenizer DAG needs no tokenizer
    assert "SettingError: SLUICE_TOKENIZER is not set: set it to a published tokenizer version" in \
        errors["sluice_codegen.py"]
    assert "sluice_tokenizer" in bag.dags and "sluice_codegen" not in bag.dags


@pytest.mark.parametrize("tag", ["latest", "LATEST", "", None])
def test_a_floating_or_missing_image_tag_fails_both_imports(dagbag, tag):
    settings = {k: v for k, v in SETTINGS.items() if k != "SLUICE_IMAGE_TAG"}
    if tag is not None:
        settings["SLUICE_IMAGE_TAG"] = tag
    bag = dagbag(**settings)
    errors = {os.path.basename(path): message for path, message in bag.import_errors.items()}
    assert set(errors) == {"sluice_codegen.py", "sluice_tokenizer.py"}
    expected = "floats" if tag else "is not set"
    assert all("SLUICE_IMAGE_TAG" in m and expected in m for m in errors.values()), errors
    assert not {"sluice_codegen", "sluice_tokenizer"} & set(bag.dags)


# Settings the weekly DAG runs with.

@pytest.mark.parametrize("value", ["gs://b/tokenizer/v1/tokenizer.model", "gs://b/mono/v1", "v1",
                                   "gs://b/tokenizer/", "gs://b/tokenizer/@"])
def test_the_tokenizer_must_be_a_tokenizer_version_or_alias(load, value):
    with pytest.raises(ValueError, match="^SLUICE_TOKENIZER=.* is not a tokenizer version"):
        load("sluice_codegen", **{**SETTINGS, "SLUICE_TOKENIZER": value})


@pytest.mark.parametrize("value", ["gs://b/tokenizer/v1", "gs://b/tokenizer/v1/", "gs://b/tokenizer/@prod",
                                   "/data/sluice/tokenizer/2026-12-07"])
def test_every_corpus_takes_the_pinned_tokenizer(load, value):
    module = load("sluice_codegen", **{**SETTINGS, "SLUICE_TOKENIZER": value})
    for pipeline in CODEGEN_ORDER:
        params = module.dag.get_task(f"{pipeline}_launch").body["launchParameter"]["parameters"]
        assert params["tokenizer"] == value.rstrip("/")


def test_a_bad_image_tag_is_refused(load):
    with pytest.raises(ValueError, match="^SLUICE_IMAGE_TAG=0.1.0 now is not an image tag"):
        load("sluice_tokenizer", **{**SETTINGS, "SLUICE_IMAGE_TAG": "0.1.0 now"})


def test_every_image_is_the_pinned_version(codegen, tokenizer_dag):
    for dag in (codegen.dag, tokenizer_dag.dag):
        for task in dag.tasks:
            if task.task_id.endswith("_launch"):
                image = task.body["launchParameter"]["environment"]["sdkContainerImage"]
            elif hasattr(task, "image"):
                image = task.image
            else:
                continue
            pipeline = task.task_id.split("_")[0]
            assert image == f"us-central1-docker.pkg.dev/sluice-prod/sluice/{pipeline}:0.1.0", task.task_id


# The weekly DAG.

def test_weekly_dag_runs_each_corpus_in_codegen_order_one_run_at_a_time(codegen):
    dag = codegen.dag
    assert dag.dag_id == "sluice_codegen" and list(codegen.PIPELINES) == CODEGEN_ORDER
    expected = [f"{p}_{step}" for p in CODEGEN_ORDER for step in STEPS]
    assert sorted(dag.task_ids) == sorted(expected)  # no tokenizer task: the weekly DAG never trains one
    for earlier, later in zip(expected, expected[1:]):  # one chain: each task waits for the one before
        assert dag.get_task(later).upstream_task_ids == {earlier}
    assert dag.get_task(expected[0]).upstream_task_ids == set()
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert type(dag.timetable).__name__ != "NullTimetable" and codegen.dag.schedule == "@weekly"
    assert codegen.SETTINGS.image_tag == "0.1.0"


def test_an_unchanged_corpus_skips_its_own_tasks_and_not_the_next_corpus(codegen):
    dag = codegen.dag
    for index, pipeline in enumerate(CODEGEN_ORDER):
        gate = dag.get_task(f"{pipeline}_changed")
        assert type(gate).__name__ == "ShortCircuitOperator"
        # Skip only the next task; the rest follow by their trigger rules (all_success: skipped too).
        assert gate.ignore_downstream_trigger_rules is False
        assert gate.downstream_task_ids == {f"{pipeline}_launch"}
        for step in ("changed", "launch", "publish", "verify", "tag"):
            assert dag.get_task(f"{pipeline}_{step}").trigger_rule == "all_success"
        check = dag.get_task(f"{pipeline}_check")
        # The next corpus's check runs after a skipped corpus (none_failed), never after a failed one.
        assert check.trigger_rule == ("none_failed" if index else "all_success")


def test_check_tasks_run_the_pipelines_own_check_and_push_its_result(codegen):
    for pipeline in CODEGEN_ORDER:
        check = codegen.dag.get_task(f"{pipeline}_check")
        launch_params = codegen.dag.get_task(f"{pipeline}_launch").body["launchParameter"]["parameters"]
        assert check.cmds == ["python", "-m", "dataflow_templates.launch"]
        assert check.arguments == [f"--pipeline={pipeline}", "--check_if_changed",
                                   *[f"--{k}={v}" for k, v in launch_params.items()],
                                   "--project=sluice-prod", "--region=us-central1"]
        assert check.do_xcom_push is True  # the pod's /airflow/xcom/return.json becomes its XCom


@pytest.mark.parametrize("result, expected", [
    ({"changed": True, "same_as": None, "config_fingerprint": "a", "input_fingerprint": "b"}, True),
    ({"changed": False, "same_as": "gs://sluice-datasets/mono/2026-11-30"}, False),
])
def test_the_gate_follows_the_checks_result(codegen, result, expected):
    import sluice_common

    class Pulled:
        def xcom_pull(self, task_ids):
            assert task_ids == "mono_check"
            return result

    gate = codegen.dag.get_task("mono_changed")
    assert gate.python_callable is sluice_common.changed_from_check and gate.op_kwargs == {"pipeline": "mono"}
    assert gate.python_callable(ti=Pulled(), **gate.op_kwargs) is expected


@pytest.mark.parametrize("result", [None, {}, {"changed": "false"}, {"changed": 0}, ["changed"]])
def test_a_malformed_check_result_fails_rather_than_skips(codegen, result):
    import sluice_common

    with pytest.raises(ValueError, match="^mono_check returned"):
        sluice_common.changed("mono", result)


def test_launches_use_each_templates_parameters(codegen):
    for pipeline in CODEGEN_ORDER:
        task = codegen.dag.get_task(f"{pipeline}_launch")
        assert task.wait_until_finished is True
        launch = task.body["launchParameter"]
        assert launch["containerSpecGcsPath"] == f"gs://sluice-dataflow/templates/{pipeline}.json"
        params, known = launch["parameters"], template_parameters(pipeline)
        assert set(params) <= set(known), set(params) - set(known)
        assert {n for n, p in known.items() if not p["isOptional"]} <= set(params)
        for name, value in params.items():
            for regex in known[name].get("regexes", []):
                assert re.match(regex, value), (pipeline, name, value)
        assert params["output"] == f"gs://sluice-datasets/{pipeline}/{{{{ ds }}}}"
        assert params["tokenizer"] == SETTINGS["SLUICE_TOKENIZER"]
        assert "shuffle_mode=service" in launch["environment"]["additionalExperiments"]


def test_publish_verify_and_tag_follow_each_job(codegen):
    for pipeline in CODEGEN_ORDER:
        launch_params = codegen.dag.get_task(f"{pipeline}_launch").body["launchParameter"]["parameters"]
        publish = codegen.dag.get_task(f"{pipeline}_publish")
        assert publish.cmds == ["python", "-m", "dataflow_templates.launch"]
        assert publish.arguments == [
            f"--pipeline={pipeline}", f"--dataflow_job_id={{{{ ti.xcom_pull(task_ids='{pipeline}_launch')['id'] }}}}",
            *[f"--{k}={v}" for k, v in launch_params.items()], "--if_changed",
            "--project=sluice-prod", "--region=us-central1"]
        verify = codegen.dag.get_task(f"{pipeline}_verify")
        assert verify.cmds == ["sluice"] and verify.arguments == ["datasets", "verify", launch_params["output"]]
        tag = codegen.dag.get_task(f"{pipeline}_tag")
        assert tag.cmds == ["sluice"] and tag.arguments == ["datasets", "tag", launch_params["output"], "latest"]


def test_templates_render_to_the_run_dates_version(codegen):
    dag = codegen.dag
    for pipeline in CODEGEN_ORDER:
        version = f"gs://sluice-datasets/{pipeline}/2026-12-07"
        launch = rendered(dag, f"{pipeline}_launch").body["launchParameter"]
        assert launch["jobName"] == f"sluice-{pipeline}-20261207"
        assert launch["parameters"]["output"] == version
        publish = rendered(dag, f"{pipeline}_publish").arguments
        assert f"--dataflow_job_id={JOB_ID}" in publish and f"--output={version}" in publish
        assert f"--output={version}" in rendered(dag, f"{pipeline}_check").arguments
        assert rendered(dag, f"{pipeline}_verify").arguments == ["datasets", "verify", version]
        assert rendered(dag, f"{pipeline}_tag").arguments == ["datasets", "tag", version, "latest"]
        for step in ("check", "launch", "publish", "verify", "tag"):
            task = rendered(dag, f"{pipeline}_{step}")
            assert_no_template_left([getattr(task, field) for field in task.template_fields])


# The tokenizer DAG.

def test_tokenizer_dag_is_triggered_by_hand_and_publishes_a_named_version(tokenizer_dag):
    dag = tokenizer_dag.dag
    assert dag.dag_id == "sluice_tokenizer" and dag.max_active_runs == 1 and dag.catchup is False
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: triggered by hand only
    assert sorted(dag.task_ids) == ["tokenizer_launch", "tokenizer_publish", "tokenizer_verify"]  # no tag
    assert dag.get_task("tokenizer_publish").upstream_task_ids == {"tokenizer_launch"}
    assert dag.get_task("tokenizer_verify").upstream_task_ids == {"tokenizer_publish"}
    params = dag.get_task("tokenizer_launch").body["launchParameter"]["parameters"]
    known = template_parameters("tokenizer")
    assert set(params) <= set(known) and params["source"] == "mono"
    for name, value in params.items():
        for regex in known[name].get("regexes", []):
            assert re.match(regex, value), (name, value)


def test_tokenizer_version_parameter_is_required_and_checked(tokenizer_dag):
    from airflow.sdk.definitions.param import ParamsDict

    dag = tokenizer_dag.dag
    with pytest.raises(Exception, match="version"):
        ParamsDict(copy.deepcopy(dag.params)).validate()  # no version: the trigger form asks for one
    for bad in ["v2/", "../v1", "-v2", "v2-", ""]:
        params = ParamsDict(copy.deepcopy(dag.params))
        with pytest.raises(Exception):
            params["version"] = bad
            params.validate()
    params = ParamsDict(copy.deepcopy(dag.params))
    params["version"] = "V2.1"
    assert params.validate() == {"version": "V2.1"}


def test_tokenizer_templates_render_to_the_named_version(tokenizer_dag):
    dag = tokenizer_dag.dag
    context = {"params": {"version": "V2.1"}}
    launch = rendered(dag, "tokenizer_launch", **context).body["launchParameter"]
    assert launch["jobName"] == "sluice-tokenizer-v2-1"  # a valid Dataflow job name
    assert launch["parameters"]["output"] == "gs://sluice-datasets/tokenizer/V2.1"
    publish = rendered(dag, "tokenizer_publish", **context).arguments
    assert "--output=gs://sluice-datasets/tokenizer/V2.1" in publish and f"--dataflow_job_id={JOB_ID}" in publish
    assert "--if_changed" not in publish  # a hand trigger means: train
    verify = rendered(dag, "tokenizer_verify", **context)
    assert verify.arguments == ["datasets", "verify", "gs://sluice-datasets/tokenizer/V2.1"]
