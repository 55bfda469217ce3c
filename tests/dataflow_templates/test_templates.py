"""The Flex Templates stay true to the pipelines: generated metadata, entry points, Dataflow translation."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re

import pytest
from apache_beam.options.pipeline_options import StandardOptions

from dataflow_templates import generate, launch
from pipelines import versions
from pipelines.cli import TEMPLATES
from pipelines.driver import DryRun, UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INSTRUCT_REGISTRY = os.path.join(ROOT, "samples", "instruct", "tasks.yaml")


def test_committed_files_equal_the_generated_ones():
    assert generate.main(["--check"]) == 0, "run: python -m dataflow_templates.generate"
    assert sorted(os.listdir(os.path.join(ROOT, "dataflow_templates"))) == sorted(
        ["__init__.py", "generate.py", "launch.py", "README.md", "scheduling", *TEMPLATES,
         *(["__pycache__"] if os.path.isdir(os.path.join(ROOT, "dataflow_templates", "__pycache__")) else [])])


# A pinned base image: a digest, or a tag naming one release (x.y.z, or a dated build YYYYMMDD).
PINNED = re.compile(r"[^\s:@]+(@sha256:[0-9a-f]{64}|:[^\s@]*(\d+\.\d+\.\d+|\d{8})[^\s@]*)")


def from_images(dockerfile: str) -> list[str]:
    """The image of every FROM line (its ``--platform`` option and ``AS name`` left out)."""
    images = []
    for line in dockerfile.splitlines():
        words = line.split()
        if words and words[0].upper() == "FROM":
            images.append(next(w for w in words[1:] if not w.startswith("--")))
    return images


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_dockerfiles_pin_their_base_images(name):
    with open(os.path.join(ROOT, "dataflow_templates", name, "Dockerfile")) as handle:
        images = from_images(handle.read())
    assert len(images) == 2, images  # the launcher, then Beam's SDK image
    for image in images:
        assert PINNED.fullmatch(image), f"{image}: pin a release (x.y.z or a dated tag) or a digest"


@pytest.mark.parametrize("image", ["python:latest", "python", "apache/beam_python3.11_sdk:2", "python:3.11",
                                   "gcr.io/x/launcher-base:flex_templates_base_image_release_latest"])
def test_the_pin_check_refuses_floating_images(image):
    assert not PINNED.fullmatch(image)
    assert PINNED.fullmatch("apache/beam_python3.11_sdk:2.77.0")
    assert PINNED.fullmatch("gcr.io/x/base:flex_templates_base_image_release_20260112_RC00")
    assert PINNED.fullmatch("python@sha256:" + "a" * 64)


def flags_of(parser) -> dict:
    """{flag name: required} read straight off the parser's option strings."""
    out = {}
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            out[action.option_strings[0].lstrip("-")] = action.required
    return out


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_parameters_match_the_parser(name):
    with open(os.path.join(ROOT, "dataflow_templates", name, "metadata.json")) as handle:
        meta = json.load(handle)
    params = {p["name"]: not p["isOptional"] for p in meta["parameters"]}
    module = importlib.import_module(f"pipelines.{name}")
    if name == "tokenizer":  # the union over --source; required only where every source requires it
        per_source = [flags_of(module.build_parser(source)) for source in module.SOURCES]
        expected = {}
        for flags in per_source:
            for flag in flags:
                expected[flag] = all(f.get(flag, False) for f in per_source)
        assert expected["source"] and expected["output"] and not expected["input"]
    else:
        expected = flags_of(module.build_parser())
        assert {"output", "tokenizer"} <= {k for k, v in expected.items() if v}
    assert params == expected
    for p in meta["parameters"]:
        assert p["label"] and p["helpText"] and p["paramType"] == "TEXT"
        for regex in p.get("regexes", []):
            re.compile(regex)


def test_regexes_accept_the_defaults_and_reject_bad_values():
    meta = generate.metadata("mono")
    regex = {p["name"]: re.compile(p["regexes"][0]) for p in meta["parameters"] if "regexes" in p}
    assert regex["num_shards"].match("64") and not regex["num_shards"].match("0")
    assert regex["pack_tail"].match("pad") and not regex["pack_tail"].match("trim")
    assert regex["near_dedup"].match("false") and not regex["near_dedup"].match("maybe")
    assert regex["dedup_threshold"].match("0.8") and not regex["dedup_threshold"].match("high")


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_entry_point_is_an_existing_module(name):
    with open(os.path.join(ROOT, "dataflow_templates", name, "Dockerfile")) as handle:
        text = handle.read()
    env = dict(re.findall(r"^ENV (\w+)=(\S+)$", text, re.M))
    assert env["SLUICE_PIPELINE"] == name
    entry = env["FLEX_TEMPLATE_PYTHON_PY_FILE"]
    assert entry.startswith("/sluice/") and os.path.isfile(os.path.join(ROOT, entry[len("/sluice/"):]))
    module = importlib.import_module(f"pipelines.{name}")
    assert callable(module.run) and callable(module.build_parser)
    copied = re.findall(r"^COPY (\S+) \1$", text, re.M)
    assert {"schemas", "transforms", "pipelines", "dataflow_templates"} <= set(copied)


def test_switch_parameters_become_the_pipelines_flags():
    from pipelines import mono

    argv = ["--input=m.jsonl", "--output=o/mono/v1", "--tokenizer=t.model", "--write_documents=true",
            "--write_rejects=false", "--near_dedup=false", "--decontaminate=TRUE"]
    translated = launch.translate(mono.build_parser(), argv)
    assert translated == ["--input=m.jsonl", "--output=o/mono/v1", "--tokenizer=t.model", "--write_documents",
                          "--no-near_dedup", "--decontaminate"]
    args, beam_args = mono.parse_args(translated)
    assert args.write_documents and not args.write_rejects and not args.near_dedup and args.decontaminate
    with pytest.raises(UsageError, match="--near_dedup: expected true or false"):
        launch.translate(mono.build_parser(), ["--near_dedup=maybe"])


def test_finalize_refuses_a_version_no_job_wrote(tmp_path, capsys, sample_tokenizer, sample_manifest):
    status = launch.main(["--pipeline=mono", "--dataflow_job_id=2026-11-26_01_02_03-123",
                          f"--input={sample_manifest}", f"--output={tmp_path}/mono/v1",
                          f"--tokenizer={sample_tokenizer}"])
    assert status == 2
    assert "no submitted job" in capsys.readouterr().err
    assert not (tmp_path / "mono" / "v1").exists()


def dataflow_args():
    """Dataflow flags that translate offline (see the issue's measured fact): no job is submitted."""
    return ["--runner=DataflowRunner", "--project=sluice-test", "--region=us-central1",
            "--temp_location=gs://sluice-test-bucket/tmp", "--no_auth", "--dry_run=True"]


@pytest.fixture
def offline_dataflow(monkeypatch):
    pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient",
                        reason="the DataflowRunner needs apache-beam[gcp] (pip install '.[test]')")
    monkeypatch.setenv("NO_GCE_CHECK", "True")


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_graph_translates_for_dataflow(name, offline_dataflow, tmp_path, sample_manifest, sample_tokenizer,
                                       nl_input, multi_snapshot):
    argv = {
        "tokenizer": ["--source=mono", f"--input={sample_manifest}", "--vocab_size=1000"],
        "mono": [f"--input={sample_manifest}", f"--tokenizer={sample_tokenizer}", "--write_documents"],
        "nl": [f"--input={nl_input}", f"--tokenizer={sample_tokenizer}", "--near_dedup"],
        "multi": [f"--bigquery_snapshot={multi_snapshot}", f"--tokenizer={sample_tokenizer}"],
        "instruct": [f"--tasks={INSTRUCT_REGISTRY}", f"--tokenizer={sample_tokenizer}", "--all_holdouts",
                     "--write_examples"],
    }[name]
    module = importlib.import_module(f"pipelines.{name}")
    output = tmp_path / name / "v1"
    with pytest.raises(DryRun) as dry:
        module.main([*argv, f"--output={output}", *dataflow_args()])
    job = dry.value.result.job
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    expected = {"tokenizer": "Train", "mono": "WriteStreams", "nl": "WriteStreams", "multi": "WriteStreams",
                "instruct": "S0/Write"}[name]
    assert expected in names
    assert job.options.view_as(StandardOptions).runner == "DataflowRunner"
    assert not output.exists()  # nothing published


@pytest.mark.parametrize("target", ["--bigquery_destination=p.d.t", "--bigquery_export_to=gs://b-1/m/*.parquet"])
def test_multi_template_refuses_the_live_query(tmp_path, capsys, sample_tokenizer, target):
    # The publish step reruns the driver: it would run (and bill) the query or the export again.
    status = launch.main(["--pipeline=multi", "--bigquery_project=p", target,
                          f"--output={tmp_path}/multi/v1", f"--tokenizer={sample_tokenizer}"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--bigquery_export" in err[0]
    assert not (tmp_path / "multi").exists()


def test_finalize_refuses_another_jobs_staging_folder(tmp_path, capsys, sample_tokenizer, sample_manifest):
    """The publish step only takes over a staging folder whose job.json names its job."""
    run_dir = tmp_path / "mono" / versions.STAGING_DIR / "v1" / versions.RUN_STATS_DIR
    run_dir.mkdir(parents=True)
    (run_dir / versions.JOB_FILE).write_text(json.dumps(
        {"job_id": "2026-11-26_01_00_00-1", "started": "2026-11-26T01:00:00Z", "version": "x"}))
    status = launch.main(["--pipeline=mono", "--dataflow_job_id=2026-11-26_02_00_00-2",
                          f"--input={sample_manifest}", f"--output={tmp_path}/mono/v1",
                          f"--tokenizer={sample_tokenizer}"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "belongs to job 2026-11-26_01_00_00-1" in err[0]
    assert (run_dir / versions.JOB_FILE).exists() and not (tmp_path / "mono" / "v1").exists()


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_images_install_the_http_client(name):
    """https:// archives need no extra: each image installs the package itself, whose REQUIRED list
    has the HTTP client (requests) and fsspec's http filesystem."""
    import ast

    from packaging.requirements import Requirement

    with open(os.path.join(ROOT, "dataflow_templates", name, "Dockerfile")) as handle:
        assert re.search(r"^RUN pip install --no-cache-dir '\.(\[[\w,]+\])?'$", handle.read(), re.M)
    with open(os.path.join(ROOT, "setup.py")) as handle:
        tree = ast.parse(handle.read())
    required = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                    and [getattr(t, "id", None) for t in node.targets] == ["REQUIRED"])
    by_name = {r.name: r for r in map(Requirement, required)}
    assert "requests" in by_name and "http" in by_name["fsspec"].extras
