"""The version layout: names, staging folders, the atomic JSON write and the move that publishes."""

from __future__ import annotations

import json

import pytest

from pipelines import versions
from pipelines.driver import UsageError


@pytest.mark.parametrize("output, expect", [
    ("gs://b/root/mono/2026-12-07/", ("gs://b/root/mono", "2026-12-07")),
    ("/data/nl/v1", ("/data/nl", "v1")),
])
def test_split_version(output, expect):
    assert versions.split_version(output) == expect


@pytest.mark.parametrize("output", ["v1", "/data/nl/.hidden", "/data/nl/a b", "/data/nl/" + "x" * 129])
def test_a_bad_version_name_is_a_usage_error(output):
    with pytest.raises(UsageError, match="must be a version folder ROOT/DATASET/VERSION"):
        versions.split_version(output)


def test_staging_folder_is_beside_the_versions():
    assert versions.staging_folder("/data/mono/v3/") == "/data/mono/_staging/v3"


def test_write_json_file_writes_json_bytes_through_a_temporary_name(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("old")
    versions.write_json_file(str(path), {"b": 1, "a": [1, 2]})
    assert path.read_bytes() == versions.json_bytes({"a": [1, 2], "b": 1})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert not (tmp_path / "m.json.tmp").exists()


def test_move_into_version_moves_every_file_and_marks_the_folder(tmp_path):
    staging, version = tmp_path / "_staging" / "v1", tmp_path / "v1"
    (staging / "eval").mkdir(parents=True)
    (staging / "train-00000-of-00001.arrow").write_bytes(b"shard")
    (staging / "eval" / "eval-00000-of-00001.tfrecord").write_bytes(b"eval")
    versions.move_into_version(str(staging), str(version))
    assert (version / "train-00000-of-00001.arrow").read_bytes() == b"shard"
    assert (version / "eval" / "eval-00000-of-00001.tfrecord").read_bytes() == b"eval"
    assert (version / versions.PUBLISHING_MARKER).read_text() == str(staging)  # until the manifest is written
    assert not staging.exists()


def test_remove_tree_and_remove(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    assert versions.files_under(str(tmp_path / "a")) == [str(tmp_path / "a" / "b" / "f")]
    versions.remove_tree(str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()
    versions.remove_tree(str(tmp_path / "never"))  # nothing there: nothing to do
    (tmp_path / "f").write_text("x")
    versions.remove(str(tmp_path / "f"))
    versions.remove(str(tmp_path / "f"))
    assert not (tmp_path / "f").exists()
