"""The scheduling recipes stay runnable: the Cloud Run job's command line and the Cloud Scheduler job
that triggers it. The Airflow DAGs' tests are in test_airflow_dags.py (`make test-airflow`)."""

from __future__ import annotations

import datetime
import json
import os
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    # Pinned to Sluice's version, the image and the workers' alike: `latest` would move under the job.
    from schemas.version import __version__

    assert container["image"].endswith(f"/nl:{__version__}")
    assert f"--sdk_container_image={container['image']}" in run


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
