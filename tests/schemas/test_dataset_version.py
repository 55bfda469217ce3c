"""Reading a version's manifest (with the sha256 of its bytes) and verifying a version: real files in
tmp_path, real damage, and every damage named."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from schemas import dataset_version as dv
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
    dv.write_version(folder, shards(5, 7), "nl", batch_rows=2)
    return folder


def write_index(folder, splits: dict) -> dict:
    """An --all_holdouts index version at ``folder``: no shards, each split a version in its folder."""
    for name, sizes in splits.items():
        dv.write_version(folder / name, shards(*sizes), "instruct")
    split_manifests = {name: dv.read_manifest(str(folder / name)) for name in splits}
    top = {**next(iter(split_manifests.values())), "shards": [], "totals": manifest_schema.totals_of([])}
    top["version"] = {"name": folder.name, "dataset_folder": str(folder.parent)}
    top["splits"] = {name: {"path": name, "totals": m["totals"],
                            "manifest_sha256": hashlib.sha256((folder / name / "manifest.json").read_bytes()).hexdigest()}
                     for name, m in split_manifests.items()}
    manifest_schema.validate(top)
    (folder / "manifest.json").write_text(json.dumps(top))
    return top


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
