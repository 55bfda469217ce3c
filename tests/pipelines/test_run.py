"""One run of one version: what it claims and refuses, how it publishes, and its modes."""

from __future__ import annotations

import json
import subprocess
import sys

import apache_beam as beam
import pytest

from pipelines import claims, versions
from pipelines.driver import DryRun, UsageError, pipeline_options
from pipelines.run import Run, RunMode
from transforms.stats.counting import count


def manifest_fields(**more) -> dict:
    return dict(dataset="mono", config={"seed": 0}, counts={}, inputs={}, tokenizer={}, shards=[], **more)


def test_run_modes_are_checked():
    assert RunMode().mode == "run" and RunMode("finalize", "job-1").job_id == "job-1"
    with pytest.raises(ValueError):
        RunMode("later")
    with pytest.raises(ValueError):
        RunMode("finalize")  # which job?
    with pytest.raises(ValueError):
        RunMode("submit", "job-1")


def test_a_run_claims_its_staging_folder_and_publishes_manifest_last(tmp_path):
    output = tmp_path / "mono" / "v1"
    with Run(str(output)) as run:
        assert run.staging == str(tmp_path / "mono" / "_staging" / "v1")
        assert claims.read(run.staging)["run_id"]
        (tmp_path / "mono" / "_staging" / "v1" / "train-00000-of-00001.arrow").write_bytes(b"shard")
        (tmp_path / "mono" / "_staging" / "v1" / "split-a").mkdir()
        split = run.manifest(split="split-a", **manifest_fields())
        published = run.publish(run.manifest(**manifest_fields()), nested={"split-a": split})
    assert published["version"] == {"name": "v1", "dataset_folder": str(tmp_path / "mono")}
    assert split["version"]["split"] == "split-a"
    assert published["created"]["started"] == run.started
    assert sorted(p.name for p in output.iterdir()) == ["manifest.json", "split-a", "train-00000-of-00001.arrow"]
    assert json.loads((output / "split-a" / "manifest.json").read_text()) == split
    assert not (tmp_path / "mono" / "_staging" / "v1").exists()  # the claim and _run went with it


def test_a_published_version_and_a_foreign_folder_are_refused(tmp_path):
    published = tmp_path / "mono" / "v1"
    published.mkdir(parents=True)
    (published / "manifest.json").write_text("{}")
    with pytest.raises(UsageError, match="already published"):
        Run(str(published)).__enter__()
    foreign = tmp_path / "mono" / "v2"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds files but no Sluice manifest"):
        Run(str(foreign)).__enter__()


def test_an_interrupted_publish_is_cleared_by_the_rerun(tmp_path):
    version = tmp_path / "mono" / "v1"
    version.mkdir(parents=True)
    (version / versions.PUBLISHING_MARKER).write_text("old staging")
    (version / "train-00000-of-00002.arrow").write_bytes(b"half")
    with Run(str(version)) as run:
        assert not version.exists()
        run.publish(run.manifest(**manifest_fields()))
    assert sorted(p.name for p in version.iterdir()) == ["manifest.json"]


def test_a_live_run_of_another_process_is_refused(tmp_path):
    output = tmp_path / "mono" / "v1"
    staging = tmp_path / "mono" / "_staging" / "v1"
    (staging / "_run").mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {**claims.this_process(), "pid": proc.pid, "start_tick": claims._start_tick(proc.pid),
                 "run_id": "other", "started": "2026-12-07T00:00:00+00:00"}
        (staging / claims.CLAIM_PATH).write_text(json.dumps(owner))
        with pytest.raises(UsageError, match=f"being written by another run .*process {proc.pid}"):
            Run(str(output)).__enter__()
    finally:
        proc.kill()
        proc.wait()
    with Run(str(output)) as run:  # its owner is gone: taken over
        assert claims.read(run.staging)["run_id"] != "other"


def test_publish_refuses_when_another_run_took_the_folder_over(tmp_path):
    with Run(str(tmp_path / "mono" / "v1")) as run:
        path = tmp_path / "mono" / "_staging" / "v1" / claims.CLAIM_PATH
        path.write_text(json.dumps({**json.loads(path.read_text()), "run_id": "usurper"}))
        with pytest.raises(UsageError, match="another run took over .* nothing was published"):
            run.publish(run.manifest(**manifest_fields()))
    assert not (tmp_path / "mono" / "v1").exists()


def test_execute_runs_the_job_and_reads_its_counters_back(tmp_path):
    with Run(str(tmp_path / "ds" / "v1")) as run:
        pipeline = beam.Pipeline(options=pipeline_options([]))
        _ = pipeline | beam.Create(["a", "b", "b"]) | beam.Map(lambda x: count("stage", "kept" if x == "a" else "dropped") or x)
        result = run.execute(pipeline)
        assert run.counts(result) == {"stage": {"dropped": 2, "kept": 1}}


def test_a_dry_run_leaves_nothing_behind(tmp_path):
    with pytest.raises(DryRun):
        with Run(str(tmp_path / "ds" / "v1")):
            raise DryRun(result=None)
    assert not (tmp_path / "ds" / "_staging" / "v1").exists() and not (tmp_path / "ds" / "v1").exists()


def test_finalize_takes_the_submitted_jobs_folder_and_start(tmp_path):
    stats = tmp_path / "ds" / "_staging" / "v1" / versions.RUN_STATS_DIR
    stats.mkdir(parents=True)
    (stats / versions.JOB_FILE).write_text(json.dumps({"job_id": "job-1", "started": "2026-12-01T00:00:00Z"}))
    with pytest.raises(UsageError, match="job-2 did not write .* belongs to job job-1"):
        Run(str(tmp_path / "ds" / "v1"), RunMode("finalize", "job-2")).__enter__()
    with Run(str(tmp_path / "ds" / "v1"), RunMode("finalize", "job-1")) as run:
        assert run.started == "2026-12-01T00:00:00Z"
    with pytest.raises(UsageError, match="no submitted job"):
        Run(str(tmp_path / "ds" / "v2"), RunMode("finalize", "job-1")).__enter__()
