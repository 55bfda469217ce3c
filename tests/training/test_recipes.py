"""The tf.data and Hugging Face datasets recipes read the same rows as the PyTorch reader."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import shutil

import numpy as np

from schemas import dataset_version as dv
from schemas import shard_batches
from schemas.files import join
from training import recipes


def rows_in_manifest_order(version, fmt="arrow"):
    manifest = dv.read_manifest(str(version))
    out = {}
    for shard in dv.shard_files(manifest, fmt):
        for batch in shard_batches.iter_batches(join(str(version), shard["path"]), fmt):
            for k, v in batch.items():
                out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def test_tf_data_recipe(numbered_version, corpus_streams):
    tf = pytest.importorskip("tensorflow", reason="tensorflow not installed (test extra on x86_64)")
    for version in (numbered_version, corpus_streams["mono"]):
        want = rows_in_manifest_order(version, "tfrecord")
        got = list(recipes.tf_dataset(str(version)).as_numpy_iterator())
        assert set(got[0]) == set(want)
        for name in want:
            np.testing.assert_array_equal(np.stack([r[name] for r in got]), want[name])
        assert all(v.dtype == tf.int64.as_numpy_dtype for v in got[0].values())


def test_hugging_face_datasets_recipe(numbered_version, corpus_streams):
    pytest.importorskip("datasets", reason="Hugging Face datasets not installed (optional)")
    for version in (numbered_version, corpus_streams["multi"]):
        want = rows_in_manifest_order(version)
        ds = recipes.hf_dataset(str(version))
        assert len(ds) == len(want["input_ids"]) and set(ds.column_names) == set(want)
        torch_rows = ds.with_format("numpy")[:]
        for name in want:
            np.testing.assert_array_equal(np.asarray(torch_rows[name]), want[name])


def test_recipes_refuse_a_shard_linked_outside_the_version(numbered_version, tmp_path):
    version = tmp_path / "version"
    shutil.copytree(numbered_version, version)
    for fmt in ("tfrecord", "arrow"):
        name = dv.shard_files(dv.read_manifest(str(version)), fmt)[0]["path"]
        (tmp_path / name).write_bytes((version / name).read_bytes())
        (version / name).unlink()
        (version / name).symlink_to(tmp_path / name)
    with pytest.raises(dv.OutsideVersion, match="leads outside the version folder"):
        recipes.tfrecord_features(str(version))
    pytest.importorskip("datasets", reason="Hugging Face datasets not installed (optional)")
    with pytest.raises(dv.OutsideVersion, match="leads outside the version folder"):
        recipes.hf_dataset(str(version))
