"""Reading a version's manifest (with the sha256 of its bytes) and verifying a version: real files in
tmp_path, real damage, and every damage named."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from schemas import dataset_version as dv

from schemas import version_writer
from schemas.files import join
from schemas import manifest as manifest_schema


def shards(*sizes, seq_len=8):
    """In-memory shards of ``sizes`` rows each, every row numbered."""
    out, start = [], 0
    for n in sizes:
        ids = (np.arange(start, start + n)[:, None] * 100 + np.arange(seq_len)).astype(np.int32)
        out.append({"input_ids": ids, "loss_mask": np.ones_like(ids, dtype=np.int8)})
        start += n
    return out


@pytest.fixture
def version(tmp_path):
    folder = tmp_path / "nl" / "v1"
    version_writer.write_version(folder, shards(5, 7), "nl", batch_rows=2)
    return folder


def write_index(folder, splits: dict) -> dict:
    """An --all_holdouts index version at ``folder``: no shards, each split a version in its folder."""
    return version_writer.write_index(folder, {name: shards(*sizes) for name, sizes in splits.items()})


def file_entries(manifest, fmt):
    return [f for s in manifest["shards"] for f in s["files"] if f["format"] == fmt]


def test_read_manifest_file_gives_the_manifest_and_the_sha256_of_its_bytes(version):
    found = dv.read_manifest_file(str(version))
    raw = (version / "manifest.json").read_bytes()
    assert found.manifest == json.loads(raw) == dv.read_manifest(str(version))
    assert found.sha256 == hashlib.sha256(raw).hexdigest()
    manifest, sha256 = found  # a pair, for callers that unpack it
    assert manifest is found.manifest and sha256 == found.sha256


def test_read_manifest_file_tells_missing_from_invalid(version, tmp_path):
    with pytest.raises(dv.NoManifest, match="not a published version"):
        dv.read_manifest_file(str(tmp_path))
    (tmp_path / "model.bin").write_bytes(b"weights")
    with pytest.raises(dv.MISSING):  # a file where a version folder should be
        dv.read_manifest_file(str(tmp_path / "model.bin"))
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["totals"]["records"] += 1
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(dv.DatasetError, match="invalid manifest") as raised:
        dv.read_manifest_file(str(version))
    assert not isinstance(raised.value, dv.NoManifest)
    assert dv.read_manifest_file(str(version), validate=False).manifest == manifest


def test_an_intact_version_verifies(version):
    assert dv.verify_version(str(version)) == []
    assert dv.verify_version(str(version) + "/", dv.read_manifest(str(version))) == []


def test_a_flipped_byte_is_named(version):
    manifest = dv.read_manifest(str(version))
    arrow = file_entries(manifest, "arrow")[1]["path"]
    data = bytearray((version / arrow).read_bytes())
    data[-40] ^= 0xFF  # inside the last batch's values: same size, still a readable stream
    (version / arrow).write_bytes(bytes(data))
    problems = dv.verify_version(str(version))
    assert len(problems) == 1 and problems[0].startswith(f"{arrow}: sha256 ")
    assert problems[0].endswith(f"manifest says {file_entries(manifest, 'arrow')[1]['sha256'][:16]}...")


def test_a_truncated_shard_is_named_unreadable_short_and_changed(version):
    manifest = dv.read_manifest(str(version))
    entry = file_entries(manifest, "tfrecord")[0]
    path = version / entry["path"]
    path.write_bytes(path.read_bytes()[:-7])
    problems = dv.verify_version(str(version))
    assert [p.split(": ", 1)[1].split(" ", 1)[0] for p in problems] == ["unreadable", str(entry["bytes"] - 7),
                                                                        "sha256"]
    assert all(p.startswith(f"{entry['path']}: ") for p in problems)
    assert problems[1] == f"{entry['path']}: {entry['bytes'] - 7} bytes, manifest says {entry['bytes']}"


def test_a_missing_file_and_a_stray_shard_are_named(version):
    manifest = dv.read_manifest(str(version))
    gone = file_entries(manifest, "arrow")[0]["path"]
    (version / gone).unlink()
    (version / "train-00009-of-00010.arrow").write_bytes(b"not listed")
    assert dv.verify_version(str(version)) == [f"{gone}: missing", "train-00009-of-00010.arrow: not in the manifest"]


def test_a_record_count_the_files_do_not_hold_is_named(version):
    """Every sha256 matches, yet the manifest claims one more record in a shard: both files fail."""
    manifest = json.loads((version / "manifest.json").read_text())
    shard = manifest["shards"][0]
    shard["records"] += 1
    manifest["totals"] = manifest_schema.totals_of(manifest["shards"])
    (version / "manifest.json").write_text(json.dumps(manifest))
    assert dv.verify_version(str(version)) == [f"{f['path']}: 5 records, manifest says 6" for f in shard["files"]]


def test_an_index_version_verifies_each_split_manifest_then_its_shards(tmp_path):
    folder = tmp_path / "instruct" / "v1"
    write_index(folder, {"holdout-a": (3,), "holdout-b": (2, 4)})
    assert dv.verify_version(str(folder)) == []

    b = dv.read_manifest(str(folder / "holdout-b"))
    shard = file_entries(b, "tfrecord")[1]["path"]
    data = bytearray((folder / "holdout-b" / shard).read_bytes())
    data[20] ^= 0x01
    (folder / "holdout-b" / shard).write_bytes(bytes(data))
    problems = dv.verify_version(str(folder))
    assert problems and all(p.startswith(f"holdout-b/{shard}: ") for p in problems)
    assert any(p.startswith(f"holdout-b/{shard}: sha256 ") for p in problems)

    edited = folder / "holdout-a" / "manifest.json"
    edited.write_text(edited.read_text() + " ")  # same manifest, other bytes: not the one indexed
    problems = dv.verify_version(str(folder))
    assert problems[0].startswith("holdout-a/manifest.json: sha256 ")
    assert problems[0].endswith("the version's manifest says "
                                f"{dv.read_manifest(str(folder))['splits']['holdout-a']['manifest_sha256'][:16]}...")
    assert all(p.startswith(f"holdout-b/{shard}: ") for p in problems[1:])

    edited.unlink()
    assert dv.verify_version(str(folder))[0] == "holdout-a/manifest.json: missing"


def test_an_index_split_whose_manifest_matches_but_is_invalid_cannot_be_verified(tmp_path):
    folder = tmp_path / "instruct" / "v1"
    write_index(folder, {"holdout-a": (3,)})
    split = folder / "holdout-a" / "manifest.json"
    bad = json.loads(split.read_text())
    bad["totals"]["records"] += 1
    split.write_text(json.dumps(bad))
    top = json.loads((folder / "manifest.json").read_text())
    top["splits"]["holdout-a"]["manifest_sha256"] = hashlib.sha256(split.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(top))
    with pytest.raises(dv.DatasetError, match=f"{folder / 'holdout-a'}: invalid manifest"):
        dv.verify_version(str(folder))


def test_verify_file_checks_size_and_sha256_before_a_trainer_reads(version):
    entry = file_entries(dv.read_manifest(str(version)), "arrow")[0]
    url = join(str(version), entry["path"])
    dv.verify_file(url, entry["bytes"], entry["sha256"])
    data = bytearray((version / entry["path"]).read_bytes())
    data[-30] ^= 0xFF
    (version / entry["path"]).write_bytes(bytes(data))
    with pytest.raises(dv.DatasetError, match=r"sha256 .*\(damaged or replaced shard\)"):
        dv.verify_file(url, entry["bytes"], entry["sha256"])


# Invalid manifests: one line naming the version and what is wrong, never a traceback --------------

def edit(manifest: dict, change) -> dict:
    change(manifest)
    return manifest


def set_path(manifest: dict, path) -> None:
    manifest["shards"][0]["files"][0]["path"] = path


INVALID = {  # what the manifest.json holds -> what the one line says
    "not JSON": (b'{"format_version": 2,', "Expecting"),
    "not UTF-8": (b'{"a": "\xff\xfe"}', "invalid manifest"),
    "not an object": (b"[1, 2, 3]", "the manifest is a list, not an object"),
    "NaN": (b'{"a": NaN}', "NaN is not JSON"),
    "a 5,000-digit integer": (b'{"a": 1' + b"0" * 5000 + b"}", "invalid manifest"),
    "nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64"),
    "missing keys": (lambda m: m.pop("shards"), "manifest lacks ['shards']"),
    "shards not a list": (lambda m: m.update(shards={}), "shards is an object, expected a list"),
    "a shard without files": (lambda m: m["shards"][0].pop("files"), "shards[0].files missing"),
    "a shard not an object": (lambda m: m["shards"].append(7), "shards[2] is an integer, expected an object"),
    "path not a string": (lambda m: set_path(m, 7), "shards[0].files[0].path is an integer, expected a string"),
    "bytes not an int": (lambda m: m["shards"][0]["files"][0].update(bytes="12"),
                         "shards[0].files[0].bytes is a string, expected an integer"),
    "bytes a boolean": (lambda m: m["shards"][0]["files"][0].update(bytes=True), "bytes is a boolean"),
    "records negative": (lambda m: m["shards"][1].update(records=-1), "shards[1].records is negative"),
    "totals not numbers": (lambda m: m["totals"].update(records="5"), "totals.records is a string"),
    "counts not objects": (lambda m: m.update(counts={"read": 3}), "counts['read'] is an integer"),
    "lineage without parents": (lambda m: m["lineage"].pop("parents"), "lineage.parents missing"),
    "a version name with a slash": (lambda m: m["version"].update(name="../../x"), "version.name '../../x' is not"),
    "a path up and out": (lambda m: set_path(m, "../../../etc/passwd"), "'../../../etc/passwd' leaves its folder"),
    "an absolute path": (lambda m: set_path(m, "/dev/zero"), "'/dev/zero' is absolute"),
    "a URL": (lambda m: set_path(m, "gs://bucket/x.arrow"), "is a URL"),
    "an empty path": (lambda m: set_path(m, ""), "path '' is empty"),
    "an empty segment": (lambda m: set_path(m, "a//b"), "has an empty or '.' segment"),
    "a split leaving the folder": (lambda m: m.update(splits={"a": {"path": "..", "manifest_sha256": "", "totals": {}}}),
                                   "splits['a'].path '..' leaves its folder"),
    "an eval file elsewhere": (lambda m: m.update(eval={"files": [{"path": "/etc/shadow", "bytes": 1, "sha256": ""}]}),
                               "eval.files[0].path '/etc/shadow' is absolute"),
}


@pytest.mark.parametrize("case", INVALID)
def test_any_invalid_manifest_is_one_line_naming_the_version(version, case):
    content, says = INVALID[case]
    if callable(content):
        content = json.dumps(edit(json.loads((version / "manifest.json").read_text()), content)).encode()
    (version / "manifest.json").write_bytes(content)
    with pytest.raises(dv.DatasetError) as raised:
        dv.read_manifest(str(version))
    message = str(raised.value)
    assert message.startswith(f"{version}: invalid manifest (") and "\n" not in message and len(message) < 500
    assert says in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.parametrize("case", ["not JSON", "not an object", "nested 100,000 deep"])
def test_an_unvalidated_read_still_refuses_what_is_not_a_json_object(version, case):
    (version / "manifest.json").write_bytes(INVALID[case][0])
    with pytest.raises(dv.DatasetError, match="invalid manifest"):
        dv.read_manifest_file(str(version), validate=False)


def test_a_huge_manifest_is_refused_before_it_is_parsed(version, monkeypatch):
    monkeypatch.setattr(dv, "MAX_MANIFEST_BYTES", 1000)
    (version / "manifest.json").write_bytes(b'{"a": "' + b"x" * 5000 + b'"}')
    with pytest.raises(dv.DatasetError, match=r"invalid manifest \(over 1,000 bytes\)"):
        dv.read_manifest(str(version))


def test_a_manifest_that_is_a_folder_or_a_fifo_is_refused_without_waiting(version):
    (version / "manifest.json").unlink()
    (version / "manifest.json").mkdir()
    with pytest.raises(dv.DatasetError, match="manifest"):
        dv.read_manifest(str(version))
    (version / "manifest.json").rmdir()
    os.mkfifo(version / "manifest.json")  # opening it to read would block until a writer came
    with pytest.raises(dv.DatasetError, match="manifest.json is not a regular file"):
        dv.read_manifest(str(version))


def test_a_split_manifest_that_is_not_json_is_one_line(tmp_path):
    folder = tmp_path / "instruct" / "v1"
    write_index(folder, {"holdout-a": (3,)})
    split = folder / "holdout-a" / "manifest.json"
    split.write_bytes(b"{not json")
    top = json.loads((folder / "manifest.json").read_text())
    top["splits"]["holdout-a"]["manifest_sha256"] = hashlib.sha256(split.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(top))
    with pytest.raises(dv.DatasetError, match=f"{folder / 'holdout-a'}: invalid manifest \\(Expecting"):
        dv.verify_version(str(folder))


# Manifest paths stay inside the version folder -------------------------------------------------

@pytest.mark.parametrize("path,says", [("../../../etc/passwd", "leaves its folder (..)"), ("/dev/zero", "is absolute"),
                                       ("file:///etc/passwd", "is a URL"), ("", "is empty"), ("a/./b", "'.' segment"),
                                       ("a\\..\\..\\b", "backslash"), (None, "is null, not a string")])
def test_member_path_refuses_a_path_that_is_not_a_name_inside(version, path, says):
    with pytest.raises(dv.OutsideVersion) as raised:
        dv.member_path(str(version), path)
    assert says in raised.value.problem and str(raised.value).startswith(f"{version}: manifest path ")


def test_member_path_resolves_links_and_refuses_one_leaving_the_folder(version, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (version / "inside").mkdir()
    (version / "inside" / "a.txt").write_text("a")
    (version / "link-in").symlink_to(version / "inside" / "a.txt")
    (version / "link-out").symlink_to(outside)
    (version / "dir-out").symlink_to(tmp_path)
    assert dv.member_path(str(version), "inside/a.txt") == f"{version}/inside/a.txt"
    assert dv.member_path(str(version), "link-in") == f"{version}/link-in"
    assert dv.member_path(str(version) + "/", "missing-yet") == f"{version}/missing-yet"
    assert dv.member_path(str(version), "dir-out/nl/v1/link-in")  # out and back in: the target counts
    for name in ("link-out", "dir-out/secret.txt"):
        with pytest.raises(dv.OutsideVersion, match=f"leads outside the version folder \\(to {outside.parent}"):
            dv.member_path(str(version), name)


def test_member_path_on_a_remote_filesystem_checks_the_name_only():
    assert dv.member_path("memory://bucket/nl/v1", "train-0.arrow") == "memory://bucket/nl/v1/train-0.arrow"
    with pytest.raises(dv.OutsideVersion, match="leaves its folder"):
        dv.member_path("memory://bucket/nl/v1", "../v2/train-0.arrow")


def test_verify_names_a_shard_linked_outside_and_never_reads_it(version, tmp_path):
    """The link's target is the very file, so its bytes would match: only the path check catches it."""
    manifest = dv.read_manifest(str(version))
    arrow = file_entries(manifest, "arrow")[0]["path"]
    (tmp_path / "elsewhere.arrow").write_bytes((version / arrow).read_bytes())
    (version / arrow).unlink()
    (version / arrow).symlink_to(tmp_path / "elsewhere.arrow")
    tfrecord = file_entries(manifest, "tfrecord")[1]["path"]
    (version / tfrecord).unlink()
    (version / tfrecord).symlink_to("/dev/zero")  # would never end
    assert dv.verify_version(str(version)) == [
        f"{arrow}: leads outside the version folder (to {tmp_path / 'elsewhere.arrow'})",
        f"{tfrecord}: leads outside the version folder (to /dev/zero)"]


def test_verify_of_a_crafted_manifest_names_each_path_and_opens_none(version):
    """verify_version given a manifest that was never validated: every bad path is a problem line."""
    manifest = dv.read_manifest(str(version))
    files = manifest["shards"][0]["files"]
    files[0]["path"], files[1]["path"] = "../../../etc/passwd", "/dev/zero"
    manifest["splits"] = {"up": {"path": "../..", "manifest_sha256": "0" * 64}}
    manifest["eval"] = {"files": [{"path": "/proc/self/environ", "bytes": 1, "sha256": "0" * 64}]}
    assert dv.verify_version(str(version), manifest) == [
        "../..: leaves its folder (..)", "../../../etc/passwd: leaves its folder (..)", "/dev/zero: is absolute",
        "/proc/self/environ: is absolute", *(f"{name}: not in the manifest" for name in sorted(
            f["path"] for f in dv.read_manifest(str(version))["shards"][0]["files"]))]


def test_verify_refuses_a_listed_fifo_without_waiting(version):
    manifest = dv.read_manifest(str(version))
    arrow = file_entries(manifest, "arrow")[0]["path"]
    (version / arrow).unlink()
    os.mkfifo(version / arrow)
    assert dv.verify_version(str(version)) == [f"{arrow}: not a regular file"]


def test_verify_checks_an_instruct_versions_eval_files(version):
    (version / "eval").mkdir()
    (version / "eval" / "eval-0.tfrecord").write_bytes(b"held out")
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["eval"] = {"examples": 1, "tasks": {}, "files": [
        {"path": "eval/eval-0.tfrecord", "examples": 1, "bytes": 8, "sha256": hashlib.sha256(b"held out").hexdigest()}]}
    (version / "manifest.json").write_text(json.dumps(manifest))
    assert dv.verify_version(str(version)) == []
    (version / "eval" / "eval-0.tfrecord").write_bytes(b"held ou7")
    assert dv.verify_version(str(version)) == [f"eval/eval-0.tfrecord: sha256 {hashlib.sha256(b'held ou7').hexdigest()[:16]}"
                                               f"..., manifest says {manifest['eval']['files'][0]['sha256'][:16]}..."]


# Aliases and resolve ---------------------------------------------------------------------------

def write_alias(dataset_folder, name, record) -> None:
    (dataset_folder / f"@{name}").write_text(record if isinstance(record, str) else json.dumps(record))


def test_resolve_follows_an_alias_and_keeps_the_rest_of_the_path(tmp_path):
    root = tmp_path / "root"
    write_index(root / "instruct" / "2026-12-07", {"holdout-a": (3,)})
    write_alias(root / "instruct", "latest", {"alias": "latest", "version": "2026-12-07"})
    assert dv.resolve(str(root / "instruct" / "@latest")) == str(root / "instruct" / "2026-12-07")
    assert dv.resolve(f"{root}/instruct/@latest/holdout-a/") == str(root / "instruct" / "2026-12-07" / "holdout-a")
    assert dv.read_manifest(dv.resolve(str(root / "instruct" / "@latest" / "holdout-a")))["totals"]["records"] == 3
    for plain in (str(root / "instruct" / "2026-12-07"), "gs://bucket/root/mono/v1", "/home/me/@Not-an-alias/x",
                  "@latest"):
        assert dv.resolve(plain) == plain  # no alias segment (a first segment is never one)


def test_split_alias_of_an_object_store_url():
    assert dv.split_alias("gs://b/root/mono/@latest/holdout-x") == ("gs://b/root/mono", "latest", "holdout-x")
    assert dv.split_alias("gs://b/root/mono/@latest") == ("gs://b/root/mono", "latest", "")
    assert dv.split_alias("gs://b/root/mono/2026-12-07") is None


@pytest.mark.parametrize("content, says", [
    (None, "no such alias (sluice datasets tag ROOT/DATASET/VERSION stable)"),
    ("not json", "invalid alias file (Expecting value"),
    ("[1]", "invalid alias file (it is a list, not an object)"),
    ('{"version": "../../etc"}', "invalid alias file (version '../../etc' is not a folder name)"),
    ('{"version": "a/b"}', "invalid alias file (version 'a/b' is not a folder name)"),
    ('{"alias": "stable"}', "invalid alias file (version None is not a folder name)"),
])
def test_a_missing_or_invalid_alias_is_one_line(tmp_path, content, says):
    (tmp_path / "mono").mkdir()
    if content is not None:
        write_alias(tmp_path / "mono", "stable", content)
    with pytest.raises(dv.DatasetError) as caught:
        dv.resolve(str(tmp_path / "mono" / "@stable" / "holdout-a"))
    assert says in str(caught.value)
    assert str(caught.value).startswith(f"{tmp_path / 'mono' / '@stable'}: ") and "\n" not in str(caught.value)


def test_alias_names_are_strict(tmp_path):
    assert dv.alias_path("gs://b/root/mono", "latest") == "gs://b/root/mono/@latest"
    for bad in ("Latest", "1st", "", "a/b", "..", "a.b", "x" * 65):
        with pytest.raises(dv.DatasetError, match="an alias name is a lowercase letter"):
            dv.alias_path(str(tmp_path), bad)


# verify --jobs ---------------------------------------------------------------------------------

def with_eval_file(version, data=b"held out") -> dict:
    (version / "eval").mkdir()
    (version / "eval" / "eval-00000-of-00001.tfrecord").write_bytes(data)
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["eval"] = {"examples": 1, "tasks": {}, "files": [
        {"path": "eval/eval-00000-of-00001.tfrecord", "examples": 1, "bytes": len(data),
         "sha256": hashlib.sha256(data).hexdigest()}]}
    (version / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_verify_with_threads_finds_the_same_problems_in_the_same_order(tmp_path):
    folder = tmp_path / "instruct" / "v1"
    write_index(folder, {"holdout-a": (3, 4, 2), "holdout-b": (5, 1)})
    with_eval_file(folder / "holdout-b")
    top = json.loads((folder / "manifest.json").read_text())
    top["splits"]["holdout-b"]["manifest_sha256"] = hashlib.sha256(
        (folder / "holdout-b" / "manifest.json").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(top))
    assert dv.verify_version(str(folder), jobs=1) == dv.verify_version(str(folder), jobs=4) == []

    a = dv.read_manifest(str(folder / "holdout-a"))
    for entry in (file_entries(a, "arrow")[0], file_entries(a, "tfrecord")[2]):
        data = bytearray((folder / "holdout-a" / entry["path"]).read_bytes())
        data[len(data) // 2] ^= 0x01
        (folder / "holdout-a" / entry["path"]).write_bytes(bytes(data))
    (folder / "holdout-a" / file_entries(a, "arrow")[1]["path"]).unlink()
    (folder / "holdout-b" / "eval" / "eval-00000-of-00001.tfrecord").write_bytes(b"held in!")
    serial = dv.verify_version(str(folder), jobs=1)
    assert list(dict.fromkeys(line.split(":")[0] for line in serial)) == [
        f"holdout-a/{file_entries(a, 'arrow')[0]['path']}",
        f"holdout-a/{file_entries(a, 'arrow')[1]['path']}",
        f"holdout-a/{file_entries(a, 'tfrecord')[2]['path']}",
        "holdout-b/eval/eval-00000-of-00001.tfrecord"]
    for _ in range(3):
        assert dv.verify_version(str(folder), jobs=4) == serial
