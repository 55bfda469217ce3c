"""Immutable dataset versions (staging, manifest-last publish, reruns) and ``sluice datasets``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipelines import cli, datasets, nl
from schemas import dataset_version as dv
from schemas import version_writer

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nl_argv(nl_input, tokenizer, output, *extra):
    return ["--input", nl_input, "--output", str(output), "--tokenizer", str(tokenizer),
            "--num_shards", "2", "--seq_len", "256", *extra]


@pytest.fixture(scope="module")
def versions(nl_input, nl_tokenizer, tmp_path_factory):
    """ROOT with nl/v1 and nl/v2 (v2 drops ArXiv and pads the tail)."""
    root = tmp_path_factory.mktemp("root")
    v1 = nl.main(nl_argv(nl_input, nl_tokenizer, root / "nl" / "v1"))
    v2 = nl.main(nl_argv(nl_input, nl_tokenizer, root / "nl" / "v2", "--exclude_sets", "ArXiv",
                         "--pack_tail", "pad"))
    return root, v1, v2


def sluice(*argv):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *argv], capture_output=True, text=True,
                          cwd=ROOT_DIR)


def test_published_version_layout_and_lineage(versions, nl_tokenizer):
    root, v1, _ = versions
    folder = root / "nl" / "v1"
    assert (folder / "manifest.json").exists() and not (folder / "_PUBLISHING").exists()
    assert not (root / "nl" / "_staging" / "v1").exists()
    assert v1["version"] == {"name": "v1", "dataset_folder": str(root / "nl")}
    parent = v1["lineage"]["parents"]["tokenizer"]
    assert parent["dataset"] == "tokenizer" and parent["path"] == str(nl_tokenizer.parent)
    assert parent["manifest_sha256"] == dv.read_manifest_file(str(nl_tokenizer.parent)).sha256
    assert v1["lineage"]["tokenizer_sha256"] == v1["tokenizer"]["sha256"]
    assert len(v1["lineage"]["inputs_fingerprint"]) == 64
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json"] + [f["path"] for s in v1["shards"] for f in s["files"]])


def test_a_published_version_is_never_overwritten(versions, nl_input, nl_tokenizer, capsys):
    root, _, _ = versions
    before = {p.name: p.read_bytes() for p in (root / "nl" / "v1").iterdir()}
    assert nl.run(nl_argv(nl_input, nl_tokenizer, root / "nl" / "v1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already published" in err[0] and "immutable" in err[0]
    assert {p.name: p.read_bytes() for p in (root / "nl" / "v1").iterdir()} == before


@pytest.mark.parametrize("output, needle", [("v..1/..", "must be a version folder"), ("_x", "must be a version")])
def test_bad_version_names_give_one_line(nl_input, nl_tokenizer, tmp_path, capsys, output, needle):
    assert nl.run(nl_argv(nl_input, nl_tokenizer, f"{tmp_path}/nl/{output}")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_a_folder_of_other_files_is_refused(nl_input, nl_tokenizer, tmp_path, capsys):
    (tmp_path / "nl" / "v1").mkdir(parents=True)
    (tmp_path / "nl" / "v1" / "notes.txt").write_text("mine")
    assert nl.run(nl_argv(nl_input, nl_tokenizer, tmp_path / "nl" / "v1")) == 2
    assert "no Sluice manifest" in capsys.readouterr().err
    assert (tmp_path / "nl" / "v1" / "notes.txt").read_text() == "mine"


def test_killed_run_publishes_nothing_and_reruns(nl_input, nl_tokenizer, versions, tmp_path):
    """SIGKILL a real run while it writes into staging: no version appears; the rerun publishes the
    same bytes as an uninterrupted run."""
    root, v1, _ = versions
    target = tmp_path / "nl" / "v1"
    staging = tmp_path / "nl" / "_staging" / "v1"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.nl", *nl_argv(nl_input, nl_tokenizer, target)],
                            cwd=ROOT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not staging.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (target / "manifest.json").exists()
    listed = datasets.list_versions(str(tmp_path))
    assert [(r["dataset"], r["version"], r["status"]) for r in listed] == [
        ("nl", "v1", "staging (unfinished run)")]
    rerun = nl.main(nl_argv(nl_input, nl_tokenizer, target))
    assert not staging.exists()
    assert rerun["shards"] == v1["shards"]
    assert datasets.verify(str(target)) == []


def test_interrupted_publish_is_cleared_on_rerun(nl_input, nl_tokenizer, versions, tmp_path):
    """A version folder left mid-publish (files moved in, marker present, no manifest) is not a
    version: listed as interrupted, cleared and published by the rerun."""
    root, v1, _ = versions
    target = tmp_path / "nl" / "v1"
    target.mkdir(parents=True)
    shard = v1["shards"][0]["files"][0]["path"]
    shutil.copy(root / "nl" / "v1" / shard, target / shard)
    (target / "_PUBLISHING").write_text("staging")
    assert [r["status"] for r in datasets.list_versions(str(tmp_path))] == ["interrupted publish"]
    assert datasets.run(["verify", str(target)]) == 2
    rerun = nl.main(nl_argv(nl_input, nl_tokenizer, target))
    assert rerun["shards"] == v1["shards"] and not (target / "_PUBLISHING").exists()


def test_list_show_and_diff(versions):
    root, v1, v2 = versions
    done = sluice("datasets", "list", str(root))
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("nl", "v1", "nl", "published"),
                                                        ("nl", "v2", "nl", "published")]
    shown = sluice("datasets", "show", str(root / "nl" / "v1"))
    assert shown.returncode == 0 and "parent tokenizer:" in shown.stdout
    assert f"{v1['totals']['records']:,} sequences" in shown.stdout

    changes = datasets.diff(str(root / "nl" / "v1"), str(root / "nl" / "v2"))
    config = {key: (old, new) for key, old, new in changes["config"]}
    assert config["pack_tail"] == ("drop", "pad") and config["exclude_sets"] == ([], ["ArXiv"])
    counts = {key: (old, new) for key, old, new in changes["counts"]}
    assert counts["set_filter/set_excluded"][1] > 0
    groups = {key for key, _, _ in changes["groups"]}
    assert "set ArXiv: documents kept" in groups
    text = sluice("datasets", "diff", str(root / "nl" / "v1"), str(root / "nl" / "v2")).stdout
    assert 'pack_tail: "drop" -> "pad"' in text and "tokenizer: no change" in text


def test_verify_passes_then_names_a_tampered_shard(versions, tmp_path):
    root, v1, _ = versions
    copy = tmp_path / "nl" / "v1"
    shutil.copytree(root / "nl" / "v1", copy)
    ok = sluice("datasets", "verify", str(copy))
    assert ok.returncode == 0 and ok.stdout.strip().endswith("OK"), ok.stdout + ok.stderr

    arrow = next(f["path"] for s in v1["shards"] for f in s["files"] if f["format"] == "arrow")
    data = bytearray((copy / arrow).read_bytes())
    data[-100] ^= 0xFF  # same size, one flipped byte inside the last batch's values
    (copy / arrow).write_bytes(bytes(data))
    tfrecord = next(f["path"] for s in v1["shards"] for f in s["files"] if f["format"] == "tfrecord")
    (copy / tfrecord).write_bytes((copy / tfrecord).read_bytes()[:-7])  # truncated
    bad = sluice("datasets", "verify", str(copy))
    assert bad.returncode == 1
    failed = [line for line in bad.stdout.splitlines() if line.startswith("FAIL ")]
    assert any(line.startswith(f"FAIL {arrow}: sha256") for line in failed)
    assert any(line.startswith(f"FAIL {tfrecord}: unreadable tfrecord") for line in failed)
    assert all(arrow in line or tfrecord in line for line in failed)


def test_verify_counts_records_not_only_bytes(versions, tmp_path):
    """A manifest that claims another record count fails, even though every sha256 matches."""
    root, _, _ = versions
    copy = tmp_path / "nl" / "v1"
    shutil.copytree(root / "nl" / "v1", copy)
    manifest = dv.read_manifest(str(copy))
    manifest["shards"][0]["records"] += 1
    from schemas import manifest as manifest_schema

    manifest["totals"] = manifest_schema.totals_of(manifest["shards"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    problems = datasets.verify(str(copy))
    name = manifest["shards"][0]["files"][0]["path"]
    assert f"{name}: {manifest['shards'][0]['records'] - 1} records, manifest says" \
           f" {manifest['shards'][0]['records']}" in problems


def test_usage_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["datasets", "show", str(tmp_path)]) == 2
    assert cli.main(["datasets", "frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not a published version" in err[0] and err[1].startswith("error: usage:")


def test_a_local_run_prints_progress_while_it_runs(nl_input, nl_tokenizer, tmp_path):
    """From the command line, per-stage counts are printed as they advance, not only at the end."""
    env = {**os.environ, "SLUICE_PROGRESS_S": "0.2"}
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "nl",
                           *nl_argv(nl_input, nl_tokenizer, tmp_path / "nl" / "v1")],
                          capture_output=True, text=True, cwd=ROOT_DIR, env=env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("progress ")]
    assert len(lines) >= 2, done.stderr
    assert all("read " in line for line in lines)
    assert lines[0] != lines[-1]
    published = dv.read_manifest(str(tmp_path / "nl" / "v1"))
    assert f"tokenize kept={published['counts']['tokenize']['kept']:,}" in lines[-1]


def write_claim(staging, **fields):
    from pipelines import claims

    (staging / "_run").mkdir(parents=True, exist_ok=True)
    claim = {"run_id": "other-run", "started": "2026-01-01T00:00:00+00:00", **fields}
    (staging / claims.CLAIM_PATH).write_text(json.dumps(claim))
    return claim


def ago(seconds):
    import datetime

    return (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)).isoformat()


def test_a_running_run_on_this_host_keeps_its_staging_folder(nl_input, nl_tokenizer, tmp_path, capsys):
    """Two runs of one version: the second is refused while the first's process lives (whatever its
    lease says), and takes the folder over once that process is gone."""
    from pipelines import claims

    target = tmp_path / "nl" / "v1"
    staging = tmp_path / "nl" / "_staging" / "v1"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        me = claims.this_process()
        write_claim(staging, host=me["host"], boot_id=me["boot_id"], pid=other.pid,
                    start_tick=claims._start_tick(other.pid), renewed=ago(3600))
        (staging / "train-00000-of-00002.arrow").write_bytes(b"the other run's half-written shard")
        assert nl.run(nl_argv(nl_input, nl_tokenizer, target)) == 2
        err = capsys.readouterr().err
        assert "is being written by another run (run other-run" in err
        assert f"its process {other.pid} on this host is still running" in err
        assert (staging / "train-00000-of-00002.arrow").exists()  # untouched
        assert [r["status"] for r in datasets.list_versions(str(tmp_path))] == [
            f"running (pid {other.pid} on {me['host']})"]
    finally:
        other.kill()
        other.wait()
    assert nl.run(nl_argv(nl_input, nl_tokenizer, target)) == 0
    assert datasets.verify(str(target)) == [] and not staging.exists()


def test_another_hosts_claim_holds_until_its_lease_lapses(nl_input, nl_tokenizer, tmp_path, capsys):
    from pipelines import claims

    target = tmp_path / "nl" / "v1"
    staging = tmp_path / "nl" / "_staging" / "v1"
    write_claim(staging, host="builder-7", boot_id="another-boot", pid=4242, start_tick=1, renewed=ago(30))
    assert nl.run(nl_argv(nl_input, nl_tokenizer, target)) == 2
    assert "runs on host builder-7 (pid 4242) and renewed its claim 30 s ago" in capsys.readouterr().err
    write_claim(staging, host="builder-7", boot_id="another-boot", pid=4242, start_tick=1,
                renewed=ago(claims.LEASE_S + 5))
    assert nl.run(nl_argv(nl_input, nl_tokenizer, target)) == 0
    assert datasets.verify(str(target)) == []


def test_a_run_that_lost_its_staging_folder_publishes_nothing(nl_input, nl_tokenizer, tmp_path):
    """Another run takes the folder over while this one writes (its claim replaced): this run ends
    with status 2 and publishes nothing."""
    from pipelines import claims

    target = tmp_path / "nl" / "v1"
    staging = tmp_path / "nl" / "_staging" / "v1"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.nl", *nl_argv(nl_input, nl_tokenizer, target)],
                            cwd=ROOT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    claim_path = staging / claims.CLAIM_PATH
    deadline = time.monotonic() + 60
    while not claim_path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before its folder could be taken over"
    write_claim(staging, host="builder-7", boot_id="another-boot", pid=4242, start_tick=1, renewed=ago(0))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "another run took over" in err and "nothing was published" in err
    assert not (target / "manifest.json").exists()


# Invalid manifests and paths outside the version: one line, never a traceback ------------------

def small_version(folder, dataset="nl"):
    ids = np.arange(24, dtype=np.int32).reshape(6, 4)
    version_writer.write_version(folder, [{"input_ids": ids[:2]}, {"input_ids": ids[2:]}], dataset)
    return folder


def edit_manifest(folder, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.out, captured
    return lines[0]


def test_verify_of_an_invalid_manifest_is_one_line_not_a_traceback(tmp_path):
    """The issue's case, as a user runs it: a subprocess, all of stderr."""
    version = small_version(tmp_path / "nl" / "v1")
    (version / "manifest.json").write_text('{"format_version": 2, "shards": ')
    done = sluice("datasets", "verify", str(version))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: {version}: invalid manifest (Expecting value: line 1 column 33"
                                        f" (char 32))"]


@pytest.mark.parametrize("command", ["verify", "show", "diff"])
@pytest.mark.parametrize("damage, says", [
    (b"[]", "the manifest is a list, not an object"),
    (b"[" * 50_000 + b"]" * 50_000, "nested deeper than 64"),
    (lambda m: m["shards"][0].pop("files"), "shards[0].files missing"),
    (lambda m: m["shards"][0]["files"][0].update(path="../../../etc/passwd"), "leaves its folder"),
    (lambda m: m["shards"][0]["files"][0].update(path="/dev/zero"), "'/dev/zero' is absolute"),
])
def test_an_invalid_manifest_is_one_line_for_every_command(tmp_path, capsys, command, damage, says):
    version = small_version(tmp_path / "nl" / "v1")
    if callable(damage):
        edit_manifest(version, damage)
    else:
        (version / "manifest.json").write_bytes(damage)
    other = small_version(tmp_path / "nl" / "v2")
    argv = {"verify": [str(version)], "show": [str(version)], "diff": [str(other), str(version)]}[command]
    assert datasets.run([command, *argv]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {version}: invalid manifest (") and says in line


def test_a_section_of_the_wrong_shape_is_one_line_in_show_summary_and_report(tmp_path, capsys):
    from pipelines import report, summary

    version = small_version(tmp_path / "nl" / "v1")
    edit_manifest(version, lambda m: m.update(sets={"ArXiv": ["not", "an", "object"]}))
    assert datasets.run(["show", str(version)]) == 2
    assert one_error_line(capsys).startswith(f"error: {version}: invalid manifest (cannot present it: TypeError")
    assert summary.run([str(version)]) == 2
    assert one_error_line(capsys).startswith(f"error: {version}: invalid manifest (cannot present it: TypeError")
    assert report.run([str(version), "--output", str(tmp_path / "r.html")]) == 2
    assert one_error_line(capsys).startswith(f"error: {version}: invalid manifest (cannot present it: TypeError")
    assert not (tmp_path / "r.html").exists()


def test_list_shows_an_invalid_manifest_as_a_row_and_lists_the_rest(tmp_path, capsys):
    small_version(tmp_path / "nl" / "v1")
    (small_version(tmp_path / "nl" / "v2") / "manifest.json").write_text("not json")
    edit_manifest(small_version(tmp_path / "nl" / "v3"), lambda m: m.update(shards="many"))
    assert datasets.run(["list", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    rows = [line.split()[:4] for line in captured.out.splitlines()[1:]]
    assert rows == [["nl", "v1", "nl", "published"], ["nl", "v2", "-", "invalid"], ["nl", "v3", "-", "invalid"]]
    assert all("invalid manifest" in line for line in captured.out.splitlines()[2:]) and captured.err == ""


def test_verify_fails_a_shard_linked_outside_the_version(tmp_path, capsys):
    """Same bytes, so every size and sha256 matches: the link alone is the problem, and it is not read."""
    version = small_version(tmp_path / "nl" / "v1")
    name = dv.read_manifest(str(version))["shards"][0]["files"][0]["path"]
    (tmp_path / name).write_bytes((version / name).read_bytes())
    (version / name).unlink()
    (version / name).symlink_to(tmp_path / name)
    assert datasets.run(["verify", str(version)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"FAIL {name}: leads outside the version folder (to {tmp_path / name})"]
    assert captured.err == f"verify: {version}: 1 problem(s) in 4 shard files\n"


def test_verify_of_an_index_names_a_missing_split_manifest_and_a_split_linked_outside(tmp_path, capsys):
    folder = tmp_path / "instruct" / "v1"
    ids = np.arange(12, dtype=np.int32).reshape(3, 4)
    version_writer.write_index(folder, {"holdout-a": [{"input_ids": ids}], "holdout-b": [{"input_ids": ids}]})
    assert datasets.run(["verify", str(folder)]) == 0
    assert capsys.readouterr().out == f"verify: {folder}: 4 shard files, 6 records: OK\n"
    (folder / "holdout-a" / "manifest.json").unlink()
    shutil.move(folder / "holdout-b", tmp_path / "holdout-b")
    (folder / "holdout-b").symlink_to(tmp_path / "holdout-b")
    assert datasets.run(["verify", str(folder)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["FAIL holdout-a/manifest.json: missing",
                                         f"FAIL holdout-b: leads outside the version folder (to {tmp_path / 'holdout-b'})"]
    assert captured.err == f"verify: {folder}: 2 problem(s) in 0 shard files\n"


# Aliases, resolve and gc -----------------------------------------------------------------------

def tokenizer_parent(root, version):
    """The lineage entry a corpus built with ROOT/tokenizer/VERSION records."""
    return {"tokenizer": {"dataset": "tokenizer", "version": version, "path": str(root / "tokenizer" / version),
                          "manifest_sha256": "0" * 64}}


def test_tag_writes_an_alias_that_every_command_resolves(tmp_path, capsys, monkeypatch):
    root = tmp_path / "root"
    for name in ("2026-11-30", "2026-12-07"):
        small_version(root / "mono" / name, "mono")
    monkeypatch.setenv("SLUICE_TAGGED_BY", "airflow:sluice_codegen")
    assert datasets.run(["tag", str(root / "mono" / "2026-11-30"), "latest"]) == 0
    assert datasets.run(["tag", str(root / "mono" / "2026-12-07"), "latest"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"tagged {root / 'mono' / '@latest'} -> 2026-11-30", f"tagged {root / 'mono' / '@latest'} -> 2026-12-07 (was 2026-11-30)"]
    alias = json.loads((root / "mono" / "@latest").read_text())
    assert alias["version"] == "2026-12-07" and alias["previous"] == "2026-11-30" and alias["dataset"] == "mono"
    assert alias["tagged_by"] == "airflow:sluice_codegen" and alias["tagged_at"].endswith("Z")
    assert alias["manifest_sha256"] == dv.read_manifest_file(str(root / "mono" / "2026-12-07")).sha256
    assert sorted(p.name for p in (root / "mono").iterdir()) == ["2026-11-30", "2026-12-07", "@latest"]  # no temporary left

    assert datasets.run(["tag", str(root / "mono" / "@latest"), "stable"]) == 0  # an alias of an alias: the version
    assert json.loads((root / "mono" / "@stable").read_text())["version"] == "2026-12-07"
    capsys.readouterr()
    done = sluice("datasets", "resolve", str(root / "mono" / "@latest"))
    assert done.returncode == 0 and done.stdout == f"{root / 'mono' / '2026-12-07'}\n"
    assert datasets.run(["verify", str(root / "mono" / "@stable"), "--jobs", "2"]) == 0
    assert capsys.readouterr().out == f"verify: {root / 'mono' / '2026-12-07'}: 4 shard files, 6 records: OK\n"
    assert datasets.run(["show", str(root / "mono" / "@latest")]) == 0
    assert "version " in capsys.readouterr().out
    assert datasets.run(["diff", str(root / "mono" / "2026-11-30"), str(root / "mono" / "@latest")]) == 0
    assert f"+++ {root / 'mono' / '2026-12-07'} (mono)" in capsys.readouterr().out

    assert datasets.run(["list", str(root)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[1], " ".join(r[9:])) for r in rows] == [("2026-11-30", "-"), ("2026-12-07", "@latest @stable")]


@pytest.mark.parametrize("target, alias, says", [
    ("mono/2026-12-07", "Latest", "alias 'Latest': an alias name is a lowercase letter"),
    ("mono/2026-12-08", "latest", "not a published version (no manifest.json)"),
    ("mono/@nope", "latest", "mono/@nope: no such alias"),
    ("mono/2026-12-07/manifest.json", "latest", "not a published version (a file, not a version folder)"),
    ("mono/_staging", "latest", "not a version folder ROOT/DATASET/VERSION"),
    ("instruct/v1/holdout-a", "latest", "its manifest names instruct/v1/holdout-a; tag the version folder itself"),
    ("broken/v1", "latest", "invalid manifest"),
])
def test_tag_refuses_anything_but_a_published_version_and_a_strict_name(tmp_path, capsys, target, alias, says):
    small_version(tmp_path / "mono" / "2026-12-07", "mono")
    (tmp_path / "mono" / "2026-12-08").mkdir()
    ids = np.arange(12, dtype=np.int32).reshape(3, 4)
    version_writer.write_index(tmp_path / "instruct" / "v1", {"holdout-a": [{"input_ids": ids}]})
    edit_manifest(tmp_path / "instruct" / "v1" / "holdout-a", lambda m: m["version"].update(name="v1", split="holdout-a"))
    (small_version(tmp_path / "broken" / "v1") / "manifest.json").write_text("{}")
    assert datasets.run(["tag", str(tmp_path / target), alias]) == 2
    assert says in one_error_line(capsys)
    assert not list(tmp_path.glob("*/@*"))


def test_a_missing_alias_is_one_line_in_every_command(tmp_path, capsys):
    small_version(tmp_path / "mono" / "v1", "mono")
    missing = tmp_path / "mono" / "@latest"
    for argv in (["resolve", str(missing)], ["show", str(missing)], ["verify", str(missing)],
                 ["diff", str(tmp_path / "mono" / "v1"), str(missing)], ["tag", str(missing), "stable"]):
        assert datasets.run(argv) == 2
        assert one_error_line(capsys) == (f"error: {missing}: no such alias (sluice datasets tag"
                                          f" ROOT/DATASET/VERSION latest)")


def gc_root(tmp_path):
    """ROOT with tokenizer t1..t4 and mono 2026-11-09 .. 2026-12-07 (weekly), mono's versions made
    with tokenizer t2 except the newest (t4), a staging folder of a live run and one of a dead run."""
    root = tmp_path / "root"
    for name in ("t1", "t2", "t3", "t4"):
        small_version(root / "tokenizer" / name, "tokenizer")
    weeks = ["2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30", "2026-12-07"]
    ids = np.arange(8, dtype=np.int32).reshape(2, 4)
    for week in weeks:
        version_writer.write_version(root / "mono" / week, [{"input_ids": ids}], "mono",
                                     parents=tokenizer_parent(root, "t4" if week == weeks[-1] else "t2"))
    return root, weeks


def test_gc_keeps_the_newest_aliased_and_parent_versions_and_leaves_staging_alone(tmp_path, capsys):
    from pipelines import claims

    root, weeks = gc_root(tmp_path)
    assert datasets.run(["tag", str(root / "mono" / weeks[1]), "paper"]) == 0
    staging = root / "mono" / "_staging"
    me = claims.this_process()
    write_claim(staging / "2026-12-14", host=me["host"], boot_id=me["boot_id"], pid=os.getpid(),
                start_tick=claims._start_tick(os.getpid()), renewed=ago(0))
    (staging / "2026-12-14" / "train-00000-of-00001.arrow").write_bytes(b"being written")
    (staging / "2026-11-02").mkdir()
    capsys.readouterr()
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert datasets.run(["gc", str(root / "mono"), "--keep", "2", "--dry_run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing deleted
    assert dry == ["would delete 2026-11-09", "keep    2026-11-16  (alias @paper)", "would delete 2026-11-23",
                   "keep    2026-11-30  (newest 2)", "keep    2026-12-07  (newest 2)",
                   "leave   _staging/2026-11-02  (staging (unfinished run))",
                   f"leave   _staging/2026-12-14  (running (pid {os.getpid()} on {me['host']}))",
                   f"gc {root / 'mono'}: 3 kept, 2 to delete (dry run: nothing deleted)"]

    assert datasets.run(["gc", str(root / "mono"), "--keep", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [line.replace("would delete", "deleted")
                                                    for line in dry[:-1]] + [f"gc {root / 'mono'}: 3 kept, 2 deleted"]
    assert sorted(p.name for p in (root / "mono").iterdir()) == ["2026-11-16", "2026-11-30", "2026-12-07",
                                                                   "@paper", "_staging"]
    assert (staging / "2026-12-14" / "train-00000-of-00001.arrow").read_bytes() == b"being written"
    assert (staging / "2026-11-02").is_dir()
    assert dv.resolve(str(root / "mono" / "@paper")) == str(root / "mono" / weeks[1])
    assert datasets.verify(str(root / "mono" / weeks[1])) == []

    # The tokenizer: t2 and t4 are parents of kept Mono versions, whatever --keep says.
    assert datasets.run(["gc", str(root / "tokenizer"), "--keep", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "deleted t1", "keep    t2  (parent in a kept version's lineage)", "deleted t3", "keep    t4  (newest 1)",
        f"gc {root / 'tokenizer'}: 2 kept, 2 deleted"]
    assert sorted(p.name for p in (root / "tokenizer").iterdir()) == ["t2", "t4"]


def test_gc_finishes_an_interrupted_deletion_and_leaves_what_is_not_a_version(tmp_path, capsys):
    root, weeks = gc_root(tmp_path)
    half = root / "mono" / weeks[0]
    (half / "_DELETING").write_text("sluice datasets gc\n")
    (half / "manifest.json").unlink()  # a gc stopped after the manifest went
    (root / "mono" / weeks[1] / "manifest.json").write_text("{broken")
    (root / "mono" / "2026-12-14").mkdir()
    (root / "mono" / "2026-12-14" / "_PUBLISHING").write_text("staging")
    (root / "mono" / "notes").mkdir()
    assert [r["status"] for r in datasets.list_versions(str(root)) if r["version"] == weeks[0]] == ["interrupted gc"]
    assert datasets.run(["gc", str(root / "mono"), "--keep", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "deleted 2026-11-09  (interrupted gc)", "deleted 2026-11-23", "deleted 2026-11-30", "keep    2026-12-07  (newest 1)",
        "leave   2026-11-16  (invalid manifest)", "leave   2026-12-14  (interrupted publish)",
        "leave   notes  (no manifest: not a version)", f"gc {root / 'mono'}: 1 kept, 3 deleted"]
    assert sorted(p.name for p in (root / "mono").iterdir()) == ["2026-11-16", "2026-12-07", "2026-12-14", "notes"]


@pytest.mark.parametrize("argv, says", [
    (["gc", "{root}/mono"], "the following arguments are required: --keep"),
    (["gc", "{root}/mono", "--keep", "0"], "must be a positive integer"),
    (["gc", "{root}/nothing", "--keep", "1"], "no such dataset folder"),
    (["verify", "{root}/mono/2026-12-07", "--jobs", "0"], "must be a positive integer"),
])
def test_gc_and_verify_flags_are_checked(tmp_path, capsys, argv, says):
    root, _ = gc_root(tmp_path)
    assert datasets.run([a.format(root=root) for a in argv]) == 2
    assert says in one_error_line(capsys)
    assert len(list((root / "mono").iterdir())) == 5


def test_gc_stops_at_an_unreadable_alias(tmp_path, capsys):
    root, _ = gc_root(tmp_path)
    (root / "mono" / "@paper").write_text("not json")
    assert datasets.run(["gc", str(root / "mono"), "--keep", "1"]) == 2
    assert one_error_line(capsys).startswith(f"error: {root / 'mono' / '@paper'}: invalid alias file")
    assert len([p for p in (root / "mono").iterdir() if p.is_dir()]) == 5


def test_list_shows_each_corpus_tokenizer_version(tmp_path, capsys):
    root, weeks = gc_root(tmp_path)
    small_version(root / "nl" / "v1")  # a model file of no version: its sha256
    assert datasets.run(["list", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[6] == "TOKENIZER"
    tokenizers = {(r.split()[0], r.split()[1]): r.split()[6] for r in lines[1:]}
    assert tokenizers == {**{("mono", week): "t2" for week in weeks[:-1]}, ("mono", weeks[-1]): "t4",
                          ("nl", "v1"): "sha256:none",
                          **{("tokenizer", name): "-" for name in ("t1", "t2", "t3", "t4")}}


def test_verify_fails_a_tampered_eval_file_with_any_number_of_jobs(tmp_path, capsys):
    folder = tmp_path / "instruct" / "v1"
    ids = np.arange(24, dtype=np.int32).reshape(6, 4)
    version_writer.write_version(folder, [{"input_ids": ids[:3]}, {"input_ids": ids[3:]}], "instruct")
    data = b"\x00" * 40
    (folder / "eval").mkdir()
    (folder / "eval" / "eval-00000-of-00001.tfrecord").write_bytes(data)
    edit_manifest(folder, lambda m: m.update(eval={"examples": 2, "tasks": {}, "files": [
        {"path": "eval/eval-00000-of-00001.tfrecord", "examples": 2, "bytes": len(data),
         "sha256": hashlib.sha256(data).hexdigest()}]}))
    assert datasets.run(["verify", str(folder)]) == 0
    capsys.readouterr()
    tampered = b"\x01" + data[1:]
    (folder / "eval" / "eval-00000-of-00001.tfrecord").write_bytes(tampered)
    results = []
    for jobs in ("1", "4"):
        assert datasets.run(["verify", str(folder), "--jobs", jobs]) == 1
        results.append(capsys.readouterr())
    assert results[0] == results[1]
    assert results[0].out.splitlines() == [
        f"FAIL eval/eval-00000-of-00001.tfrecord: sha256 {hashlib.sha256(tampered).hexdigest()[:16]}"
        f"..., manifest says {hashlib.sha256(data).hexdigest()[:16]}..."]
    assert results[0].err == f"verify: {folder}: 1 problem(s) in 4 shard files\n"


def test_a_run_given_a_tokenizer_alias_records_the_version_it_names(versions, nl_input, nl_tokenizer, tmp_path):
    """--tokenizer ROOT/tokenizer/@pinned: the manifest's config, tokenizer and lineage name the
    version, so they stay true after the alias moves; the stream is the model file's."""
    root, v1, _ = versions
    tokenizer = tmp_path / "tokenizer" / nl_tokenizer.parent.name
    shutil.copytree(nl_tokenizer.parent, tokenizer)
    assert datasets.run(["tag", str(tokenizer), "pinned"]) == 0
    manifest = nl.main(nl_argv(nl_input, tmp_path / "tokenizer" / "@pinned", tmp_path / "nl" / "v1"))
    model = str(tokenizer / "tokenizer.model")
    assert manifest["config"]["tokenizer"] == manifest["tokenizer"]["path"] == model
    assert manifest["lineage"]["parents"]["tokenizer"]["path"] == str(tokenizer)
    assert "@" not in json.dumps(manifest)
    assert manifest["shards"] == v1["shards"]
    rows = {r["dataset"]: r for r in datasets.list_versions(str(tmp_path)) if r["status"] == "published"}
    assert rows["nl"]["tokenizer"] == nl_tokenizer.parent.name


def test_gc_keeps_a_parent_named_only_by_a_split_of_another_dataset(tmp_path, capsys):
    root, _ = gc_root(tmp_path)
    index = root / "instruct" / "v1"
    ids = np.arange(8, dtype=np.int32).reshape(2, 4)
    version_writer.write_index(index, {"holdout-a": [{"input_ids": ids}]})
    edit_manifest(index / "holdout-a", lambda m: m["lineage"].update(parents=tokenizer_parent(root, "t3")))
    assert datasets.run(["gc", str(root / "tokenizer"), "--keep", "1", "--dry_run"]) == 0
    assert capsys.readouterr().out.splitlines()[:4] == [
        "would delete t1", "keep    t2  (parent in a kept version's lineage)",
        "keep    t3  (parent in a kept version's lineage)", "keep    t4  (newest 1)"]
