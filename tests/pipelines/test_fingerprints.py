"""--if_changed: fingerprints of config and inputs, the skip of an unchanged dataset, and the
launcher's check (``dataflow_templates.launch --check_if_changed``) with its XCom file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from dataflow_templates import launch
from pipelines import fingerprints, instruct, mono, multi, nl, versions
from pipelines.run import Run, RunMode
from schemas import manifest as manifest_schema
from tests.conftest import ROOT

# Cheap Mono runs: one shard, no near-dedup or decontamination.
CHEAP = ["--num_shards", "1", "--seq_len", "256", "--no-near_dedup", "--no-decontaminate"]


def mono_argv(sample_manifest, tokenizer, output, *extra):
    return ["--input", str(sample_manifest), "--tokenizer", str(tokenizer), "--output", str(output),
            *CHEAP, *extra]


def touch(path):
    """A new modification time, as a re-upload of the same bytes would give."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))


def launch_check(monkeypatch, capsys, xcom, pipeline, argv) -> dict:
    monkeypatch.setenv(fingerprints.XCOM_DIR_ENV, str(xcom))
    status = launch.main([f"--pipeline={pipeline}", "--check_if_changed", *argv])
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0 and len(out) == 1, out
    return json.loads(out[0])


@pytest.fixture(scope="module")
def mono_v1(sample_manifest, sample_tokenizer, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    manifest = mono.main(mono_argv(sample_manifest, sample_tokenizer, root / "mono" / "v1"))
    return root, manifest


def test_the_manifest_records_the_fingerprints(mono_v1, sample_manifest, sample_tokenizer):
    _, manifest = mono_v1
    prints = manifest["fingerprints"]
    detail = prints["detail"]
    assert prints["config"] == manifest_schema.fingerprint(detail["config"])
    assert prints["inputs"] == manifest_schema.fingerprint(detail["inputs"])
    assert detail["inputs"]["manifest"]["sha256"] == hashlib.sha256(sample_manifest.read_bytes()).hexdigest()
    assert len(detail["inputs"]["archives"]) == 14 and all("mtime" in a for a in detail["inputs"]["archives"])
    assert detail["config"]["tokenizer"]["sha256"] == manifest["tokenizer"]["sha256"]
    # where the input and the tokenizer live is not part of the config's fingerprint
    assert "manifest" not in detail["config"]["config"] and "tokenizer" not in detail["config"]["config"]
    assert detail["config"]["config"]["seed"] == 0 and detail["config"]["dataset"] == "mono"


def test_an_unchanged_rerun_publishes_nothing(mono_v1, sample_manifest, sample_tokenizer, capsys):
    root, manifest = mono_v1
    for version in ("v2", "v1"):  # a new version, and the published one (a rerun of the same date)
        status = mono.run(mono_argv(sample_manifest, sample_tokenizer, root / "mono" / version, "--if_changed"))
        out = capsys.readouterr().out.strip().splitlines()
        assert status == 0 and len(out) == 1
        assert out[0] == (f"unchanged: {root}/mono/v1 has the same config and inputs (config sha256"
                          f" {manifest['fingerprints']['config'][:12]}, inputs sha256"
                          f" {manifest['fingerprints']['inputs'][:12]}); nothing published")
    assert not (root / "mono" / "v2").exists()
    assert not list((root / "mono" / "_staging").iterdir())  # nothing claimed (v1's publish left it empty)


def test_launch_check_prints_and_writes_the_xcom(mono_v1, sample_manifest, sample_tokenizer, tmp_path,
                                                 monkeypatch, capsys):
    root, manifest = mono_v1
    xcom = tmp_path / "xcom"
    xcom.mkdir()
    argv = [f"--input={sample_manifest}", f"--tokenizer={sample_tokenizer}", f"--output={root}/mono/v9",
            "--num_shards=1", "--seq_len=256", "--near_dedup=false", "--decontaminate=false"]
    result = launch_check(monkeypatch, capsys, xcom, "mono", argv)
    assert result == {"changed": False, "same_as": f"{root}/mono/v1",
                      "config_fingerprint": manifest["fingerprints"]["config"],
                      "input_fingerprint": manifest["fingerprints"]["inputs"]}
    assert json.loads((xcom / "return.json").read_text()) == result
    assert [p.name for p in xcom.iterdir()] == ["return.json"]
    changed = launch_check(monkeypatch, capsys, tmp_path / "no-xcom-folder", "mono",
                           [*argv[:-2], "--near_dedup=false", "--decontaminate=true"])
    assert changed["changed"] is True and changed["same_as"] is None
    assert changed["input_fingerprint"] == manifest["fingerprints"]["inputs"]
    assert changed["config_fingerprint"] != manifest["fingerprints"]["config"]
    assert not (tmp_path / "no-xcom-folder").exists() and not (root / "mono" / "v9").exists()


def test_a_changed_flag_runs_and_publishes(mono_v1, sample_manifest, sample_tokenizer, tmp_path, monkeypatch,
                                           capsys):
    _, v1 = mono_v1
    root = tmp_path / "root"
    shutil.copytree(mono_v1[0] / "mono" / "v1", root / "mono" / "v1")
    status = mono.run(mono_argv(sample_manifest, sample_tokenizer, root / "mono" / "v2", "--seed", "1",
                                "--if_changed"))
    assert status == 0 and not capsys.readouterr().out.startswith("unchanged")
    v2 = json.loads((root / "mono" / "v2" / "manifest.json").read_text())
    assert v2["fingerprints"]["inputs"] == v1["fingerprints"]["inputs"]
    assert v2["fingerprints"]["config"] != v1["fingerprints"]["config"]
    # the newest version is the one compared: seed 0 again is a change from v2
    base = [f"--input={sample_manifest}", f"--tokenizer={sample_tokenizer}", f"--output={root}/mono/v3",
            "--num_shards=1", "--seq_len=256", "--near_dedup=false", "--decontaminate=false"]
    xcom = tmp_path / "xcom"
    assert launch_check(monkeypatch, capsys, xcom, "mono", base)["changed"] is True
    assert launch_check(monkeypatch, capsys, xcom, "mono", [*base, "--seed=1"])["same_as"] == f"{root}/mono/v2"


def test_a_touched_input_is_a_change(mono_v1, sample_tokenizer, tmp_path, monkeypatch, capsys):
    samples = tmp_path / "mono"
    shutil.copytree(ROOT / "samples" / "mono", samples)
    before = fingerprints.mono_manifest_inputs(str(samples / "manifest.jsonl"))
    assert fingerprints.mono_manifest_inputs(str(samples / "manifest.jsonl")) == before
    touch(samples / "manifest.jsonl")  # the manifest counts by its bytes: a new mtime is no change
    assert fingerprints.mono_manifest_inputs(str(samples / "manifest.jsonl")) == before
    touch(next((samples / "archives").glob("attrs-*")))  # an archive on a filesystem, by its version
    assert fingerprints.mono_manifest_inputs(str(samples / "manifest.jsonl")) != before
    root, _ = mono_v1
    argv = [f"--input={samples / 'manifest.jsonl'}", f"--tokenizer={sample_tokenizer}",
            f"--output={root}/mono/v9", "--num_shards=1", "--seq_len=256", "--near_dedup=false",
            "--decontaminate=false"]
    assert launch_check(monkeypatch, capsys, tmp_path / "xcom", "mono", argv)["changed"] is True


def test_older_versions_and_finalize_steps(mono_v1, sample_manifest, sample_tokenizer, tmp_path):
    _, v1 = mono_v1
    older = {k: v for k, v in v1.items() if k != "fingerprints"}
    (tmp_path / "mono" / "old").mkdir(parents=True)
    (tmp_path / "mono" / "old" / "manifest.json").write_text(json.dumps(older))
    args, _ = mono.parse_args(mono_argv(sample_manifest, sample_tokenizer, tmp_path / "mono" / "new",
                                        "--if_changed"))
    found = fingerprints.Fingerprints(config=v1["fingerprints"]["detail"]["config"],
                                      inputs=v1["fingerprints"]["detail"]["inputs"])
    assert fingerprints.check(args.output, found) == (True, None, found)  # no fingerprints: changed
    (tmp_path / "mono" / "old" / "manifest.json").write_text(json.dumps(v1))
    assert fingerprints.check(args.output, found).same_as == f"{tmp_path}/mono/old"
    with pytest.raises(fingerprints.Unchanged):
        fingerprints.gate(args, args.output, found, RunMode())
    # the publish step of a submitted job never skips: its job ran because something had changed
    assert fingerprints.gate(args, args.output, found, RunMode("finalize", "job-1")) is None


def test_the_manifest_schema_checks_the_fingerprints(mono_v1):
    _, manifest = mono_v1
    manifest_schema.validate(manifest)
    with pytest.raises(ValueError, match="fingerprints.inputs is an integer"):
        manifest_schema.validate({**manifest, "fingerprints": {"config": "a", "inputs": 1}})


# Each pipeline's fingerprint, without running it: the same on a rerun, another when an input changes.

def fake_tokenizer(tmp_path):
    """Fingerprints hash the model file; nothing here loads it."""
    path = tmp_path / "tokenizer.model"
    path.write_bytes(b"model bytes")
    return str(path)


def test_nl_fingerprint(tmp_path, nl_files):
    folder = tmp_path / "pile"
    folder.mkdir()
    for path in nl_files:
        shutil.copy(path, folder / path.name.replace(".jsonl", f"-{path.parent.name}.jsonl"))

    def found(pattern):
        args, _ = nl.parse_args(["--input", pattern, "--tokenizer", fake_tokenizer(tmp_path),
                                 "--output", str(tmp_path / "nl" / "v1")])
        return nl.run_fingerprints(args, nl.run_config(args, nl.read_config(args), None))

    first = found(f"{folder}/*.jsonl.zst")
    assert len(first.inputs["files"]) == 3 and all(f["bytes"] > 0 for f in first.inputs["files"])
    names = ",".join(str(p) for p in sorted(folder.iterdir()))
    assert found(names) == first  # the same files, however the patterns name them
    touch(next(folder.iterdir()))
    assert found(names).inputs_sha256 != first.inputs_sha256
    assert found(names).config_sha256 == first.config_sha256


def test_multi_snapshot_fingerprint(tmp_path, multi_snapshot):
    snapshot = tmp_path / "snapshot"
    shutil.copytree(multi_snapshot, snapshot)

    def found(*extra):
        args, _ = multi.parse_args(["--bigquery_snapshot", str(snapshot), "--tokenizer", fake_tokenizer(tmp_path),
                                    "--output", str(tmp_path / "multi" / "v1"), *extra])
        selection = multi.read_config(args)
        config = multi.run_config(args, selection, None, None)
        return multi.run_fingerprints(args, selection, config, None)

    first = found()
    assert set(first.inputs["tables"]) == {"contents", "files", "languages", "licenses", "sample_repos"}
    assert found() == first
    touch(snapshot / "files.parquet")  # tables count by their sha256
    assert found() == first
    table = pq.read_table(snapshot / "sample_repos.parquet")
    pq.write_table(table.slice(1), snapshot / "sample_repos.parquet")
    assert found().inputs_sha256 != first.inputs_sha256
    assert found("--min_stars", "5").config_sha256 != first.config_sha256


def test_a_live_query_always_counts_as_changed(tmp_path):
    args, _ = multi.parse_args(["--bigquery_project", "p", "--bigquery_destination", "p.d.t",
                                "--tokenizer", fake_tokenizer(tmp_path), "--output", str(tmp_path / "multi" / "v1")])
    selection = multi.read_config(args)
    found = multi.run_fingerprints(args, selection, multi.run_config(args, selection, None, None), None)
    assert found.inputs["always_changed"] == fingerprints.LIVE_QUERY
    assert fingerprints.check(args.output, found) == (True, None, found)


def test_instruct_fingerprint(tmp_path):
    samples = tmp_path / "samples"
    shutil.copytree(ROOT / "samples" / "instruct", samples / "instruct")
    shutil.copytree(ROOT / "samples" / "mono", samples / "mono")
    registry_path = samples / "instruct" / "tasks.yaml"

    def found():
        args, _ = instruct.parse_args(["--tasks", str(registry_path), "--tokenizer", fake_tokenizer(tmp_path),
                                       "--output", str(tmp_path / "instruct" / "v1"), "--all_holdouts"])
        registry = instruct.load_registry(args)
        return instruct.run_fingerprints(args, registry, instruct.plan_splits(registry, args),
                                         instruct.flags.decontamination_config(args))

    first = found()
    assert first.inputs["files"] and list(first.inputs["mono"]) and "tasks" not in first.config["config"]
    assert found() == first
    touch(next((samples / "instruct" / "gsm8k").glob("*.jsonl")))
    second = found()
    assert second.inputs_sha256 != first.inputs_sha256 and second.config_sha256 == first.config_sha256
    registry_path.write_text(registry_path.read_text() + "\n# a comment\n")
    assert found().inputs["registry"] != second.inputs["registry"]


def test_tokenizer_fingerprint_through_the_launcher_check(tmp_path, monkeypatch, capsys):
    samples = tmp_path / "mono"
    shutil.copytree(ROOT / "samples" / "mono", samples)
    argv = ["--source=mono", f"--input={samples / 'manifest.jsonl'}", f"--output={tmp_path}/tokenizer/v1",
            "--vocab_size=1000"]
    first = launch_check(monkeypatch, capsys, tmp_path, "tokenizer", argv)
    assert first["changed"] is True and first["same_as"] is None  # nothing published yet
    assert launch_check(monkeypatch, capsys, tmp_path, "tokenizer", argv) == first
    touch(next((samples / "archives").glob("click-*")))
    second = launch_check(monkeypatch, capsys, tmp_path, "tokenizer", argv)
    assert second["input_fingerprint"] != first["input_fingerprint"]
    assert second["config_fingerprint"] == first["config_fingerprint"]
    other = launch_check(monkeypatch, capsys, tmp_path, "tokenizer", [*argv[:-1], "--vocab_size=2000"])
    assert other["config_fingerprint"] != first["config_fingerprint"]
    assert not (tmp_path / "tokenizer").exists()


def test_finalize_publishes_the_fingerprints_noted_with_the_job(tmp_path):
    """A template's launcher computes the fingerprints before the job and notes them in job.json;
    the publish step, run after the job, publishes those rather than its own."""
    noted = fingerprints.Fingerprints(config={"seed": 0}, inputs={"files": []})
    later = fingerprints.Fingerprints(config={"seed": 0}, inputs={"files": ["changed meanwhile"]})
    stats = tmp_path / "ds" / "_staging" / "v1" / versions.RUN_STATS_DIR
    stats.mkdir(parents=True)
    (stats / versions.JOB_FILE).write_text(json.dumps(
        {"job_id": "job-1", "started": "2026-12-01T00:00:00Z", "fingerprints": noted.section()}))
    with Run(str(tmp_path / "ds" / "v1"), RunMode("finalize", "job-1"), later) as run:
        manifest = run.manifest(dataset="mono", config={"seed": 0}, counts={}, inputs={}, tokenizer={},
                                shards=[])
    assert manifest["fingerprints"] == noted.section()
    with pytest.raises(ValueError, match="check-only"):
        Run(str(tmp_path / "ds" / "v2"), RunMode("check"))


def test_a_tokenizer_alias_is_fingerprinted_as_the_model_it_names(tmp_path, nl_tokenizer):
    """--tokenizer ROOT/tokenizer/@ALIAS (or a version folder) is fingerprinted as the model file it
    names (the config's tokenizer, resolved), the same as when the file itself is given."""
    from pipelines import aliases, flags

    version = tmp_path / "tokenizer" / nl_tokenizer.parent.name
    shutil.copytree(nl_tokenizer.parent, version)
    aliases.tag(str(version), "pinned")
    model = str(version / "tokenizer.model")
    found = []
    for given in (model, str(version), str(tmp_path / "tokenizer" / "@pinned")):
        args, _ = flags.parse_built(mono.build_parser(), ["--input", "m", "--output", "o", "--tokenizer", given])
        assert args.tokenizer == given  # parsing reads no file: the resolution happens in main
        config = flags.stream_config(args)
        assert config["tokenizer"] == model
        found.append(fingerprints.fingerprints("mono", config, {}, config["tokenizer"]))
    assert found == [found[0]] * 3
