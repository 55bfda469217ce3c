"""bench/harness.py: the one home of what the bench scripts share, and the only place that sets up paths."""

from __future__ import annotations

import ast
import importlib
import json
import os
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"
# Scripts: run, never imported. The other modules of bench/ are libraries the scripts import.
SCRIPTS = {"mono_pipeline", "corpus_pipelines", "dedup_speed", "dedup_quality", "reader", "train_throughput"}


@pytest.fixture
def harness(monkeypatch):
    # Importing harness edits sys.path and PYTHONPATH: both are restored after the test.
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("harness", None)
    yield importlib.import_module("harness")
    sys.modules.pop("harness", None)


def test_only_the_harness_sets_up_paths_and_no_script_imports_another():
    for path in sorted(BENCH.glob("*.py")):
        if path.name == "harness.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                pytest.fail(f"{path.name}:{node.lineno} touches sys.path; bench/harness.py sets it up")
            if isinstance(node, ast.Constant) and node.value == "PYTHONPATH":
                if path.name != "dedup_speed.py":  # it removes PYTHONPATH for datatrove's own venv
                    pytest.fail(f"{path.name}:{node.lineno} sets PYTHONPATH; bench/harness.py does")
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            assert not SCRIPTS & set(names), f"{path.name}:{node.lineno} imports a script: {names}"


def test_import_puts_the_repository_and_bench_on_both_paths(harness):
    assert harness.REPO in sys.path
    entries = os.environ["PYTHONPATH"].split(os.pathsep)
    assert entries[:2] == [harness.REPO, harness.BENCH]
    importlib.reload(harness)  # a child process imports it again: no entry twice
    assert os.environ["PYTHONPATH"].split(os.pathsep).count(harness.REPO) == 1


def test_machine_info_has_the_report_keys(harness):
    info = harness.machine_info()
    assert set(info) == {"nproc", "cpu_count", "cpu_model", "mem_gib", "platform", "python"}
    assert info["nproc"] >= 1
    assert harness.versions("pytest", "surely-not-installed-dist") == {
        "pytest": pytest.__version__, "surely-not-installed-dist": "unknown"}


def test_stopwatch_and_timed_runs(harness):
    with harness.Stopwatch() as watch:
        sum(range(200_000))
    assert watch.wall > 0 and watch.cpu >= 0 and watch.cpu_self >= 0
    calls = []
    runs = harness.timed_runs(lambda: calls.append(1), 3)
    assert len(calls) == 3 and len(runs["walls"]) == len(runs["cpus"]) == 3
    assert runs["wall"] == sorted(runs["walls"])[1]
    assert harness.median([]) is None


def test_machine_load_background(harness):
    load = harness.MachineLoad()
    background = load.background()
    assert set(background) == {"wall_seconds", "other_cpu_seconds", "other_cpus", "steal_seconds", "loadavg"}
    assert background["other_cpu_seconds"] >= 0 and len(background["loadavg"]) == 2
    lines = harness.load_lines({**background, "other_cpus": 0.5}, 2)
    assert lines[0].startswith("load      ") and "WARNING" in lines[1]


def test_tree_sampler_reads_this_process_peak_rss(harness):
    with harness.TreeSampler(os.getpid(), interval=0.01) as sampler:
        pass
    assert sampler.peak_mb[os.getpid()] > 0
    assert harness.proc_status_kb(os.getpid())["VmRSS"] > 0


def test_work_folder_and_json(harness, tmp_path):
    with harness.work_folder(None, "harness-test-", keep=False) as folder:
        assert os.path.isdir(folder)
        harness.write_json(os.path.join(folder, "out.json"), {"b": 1, "path": pathlib.Path("x")}, sort_keys=True)
        assert json.loads(pathlib.Path(folder, "out.json").read_text()) == {"b": 1, "path": "x"}
    assert not os.path.exists(folder)
    kept = tmp_path / "kept"
    with harness.work_folder(str(kept), "unused-", keep=True):
        pass
    assert kept.is_dir()


def test_synthetic_version_is_deterministic(harness, tmp_path):
    from schemas import dataset_version as dv

    for name in ("a", "b"):
        harness.write_synthetic_version(str(tmp_path / name), [3, 2], 16, vocab=100, batch_rows=2)
    manifests = [dv.read_manifest(str(tmp_path / name)) for name in ("a", "b")]
    assert manifests[0]["totals"]["records"] == 5
    assert manifests[0]["totals"]["tokens"] == 5 * 16
    assert [s["files"] for s in manifests[0]["shards"]] == [s["files"] for s in manifests[1]["shards"]]
