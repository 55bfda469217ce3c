"""The PyTorch reader: every sequence once per epoch across ranks and workers, stable order, exact
resume, shard checksums, every column, and both shard formats."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import json
import shutil

import numpy as np
import torch

from schemas import dataset_version as dv
from schemas import shard_batches
from training import data


def rows_of(batches) -> list:
    return [int(r[0]) for b in batches for r in b["input_ids"]]


def read_all(version, **kwargs) -> list:
    workers = kwargs.pop("num_workers", 0)
    return list(data.loader(data.PackedDataset(str(version), **kwargs), num_workers=workers))


@pytest.mark.parametrize("fmt", ["arrow", "tfrecord"])
def test_epoch_is_every_row_once_in_a_seeded_shard_order(numbered_version, fmt):
    batches = read_all(numbered_version, batch_size=4, fmt=fmt, seed=3)
    rows = rows_of(batches)
    assert sorted(rows) == list(range(18))
    order = data.shard_order(3, 3, 0)
    starts, sizes = [0, 7, 7], [7, 0, 11]
    assert rows == [r for s in order for r in range(starts[s], starts[s] + sizes[s])]
    assert [len(b["input_ids"]) for b in batches] == [4, 4, 4, 4, 2]
    assert [b["batch"] for b in batches] == [0, 1, 2, 3, 4]


def test_every_column_is_yielded_with_its_dtype(numbered_version):
    batch = read_all(numbered_version, batch_size=5)[0]
    assert batch["input_ids"].dtype == torch.int32 and batch["input_ids"].shape == (5, 8)
    assert batch["loss_mask"].dtype == torch.int8 and batch["segment_ids"].dtype == torch.int32
    assert torch.equal(batch["loss_mask"].long(), batch["input_ids"].long() % 2)


def test_arrow_and_tfrecord_give_the_same_batches(numbered_version):
    a, t = read_all(numbered_version, batch_size=3, fmt="arrow"), read_all(numbered_version, batch_size=3, fmt="tfrecord")
    assert len(a) == len(t)
    for x, y in zip(a, t):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in ("input_ids", "loss_mask", "segment_ids"))


def test_seed_and_epoch_change_the_order_deterministically(numbered_version):
    first = rows_of(read_all(numbered_version, batch_size=2, seed=0))
    assert first == rows_of(read_all(numbered_version, batch_size=2, seed=0))
    orders = {tuple(data.shard_order(3, seed, epoch)) for seed in range(4) for epoch in range(4)}
    assert len(orders) > 1


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_ranks_split_without_overlap_or_gap(numbered_version, world):
    parts = [rows_of(read_all(numbered_version, batch_size=2, rank=r, world_size=world)) for r in range(world)]
    flat = [x for p in parts for x in p]
    assert sorted(flat) == list(range(18)) and len(set(flat)) == 18
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [2, 3])
def test_worker_count_does_not_change_the_order(numbered_version, workers):
    single = read_all(numbered_version, batch_size=2, seed=1, epochs=2)
    multi = read_all(numbered_version, batch_size=2, seed=1, epochs=2, num_workers=workers)
    assert [(b["epoch"], b["batch"]) for b in single] == [(b["epoch"], b["batch"]) for b in multi]
    assert rows_of(single) == rows_of(multi)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_yields_exactly_the_batches_that_would_have_come(numbered_version, workers):
    full = read_all(numbered_version, batch_size=2, seed=5, epochs=3)
    ds = data.PackedDataset(str(numbered_version), batch_size=2, seed=5, epochs=3)
    for cut in (1, 8, 9, 20):  # 9 batches per epoch: mid-epoch, at and after an epoch boundary
        state = ds.state_after(full[cut - 1])
        rest = read_all(numbered_version, batch_size=2, seed=5, state=state, epochs=3 - state["epoch"],
                        num_workers=workers)
        assert rows_of(rest) == rows_of(full[cut:])


def test_a_damaged_shard_is_refused(numbered_version, tmp_path):
    copy = tmp_path / "version"
    shutil.copytree(numbered_version, copy)
    path = copy / "train-00002-of-00003.arrow"
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(dv.DatasetError, match="sha256"):
        read_all(copy, batch_size=4)


def test_not_a_dataset_is_a_clear_error(tmp_path, numbered_version):
    with pytest.raises(dv.DatasetError, match="no manifest.json"):
        data.PackedDataset(str(tmp_path), batch_size=1)
    with pytest.raises(dv.DatasetError, match="18 sequences cannot feed 19 ranks"):
        data.PackedDataset(str(numbered_version), batch_size=1, rank=0, world_size=19)


def test_pipeline_streams_read_in_full(corpus_streams):
    for name, folder in corpus_streams.items():
        ds = data.PackedDataset(str(folder), batch_size=8)
        got = sum(len(b["input_ids"]) for b in data.loader(ds))
        assert got == ds.manifest["totals"]["records"] > 0, name
        from schemas.packed_stream import read_arrow_stream

        shard = ds.shards[0]
        ids, _ = read_arrow_stream(str(folder / shard["path"]))
        np.testing.assert_array_equal(ids[0], next(shard_batches.iter_batches(str(folder / shard["path"]), "arrow"))["input_ids"][0])


@pytest.mark.parametrize("fmt", ["arrow", "tfrecord"])
def test_any_fsspec_url(numbered_version, fmt):
    import fsspec

    fs = fsspec.filesystem("memory")
    for path in numbered_version.iterdir():
        fs.pipe(f"/sluice-test/{path.name}", path.read_bytes())
    try:
        remote = read_all("memory://sluice-test", batch_size=4, fmt=fmt, seed=3)
        local = read_all(numbered_version, batch_size=4, fmt=fmt, seed=3)
        assert rows_of(remote) == rows_of(local)
    finally:
        fs.rm("/sluice-test", recursive=True)


def test_reads_a_pipeline_version_in_the_versioned_layout(corpus_streams):
    """ROOT/DATASET/VERSION as the pipelines publish it: every sequence of the manifest, once."""
    version = corpus_streams["mono"]
    manifest = dv.read_manifest(str(version))
    assert (manifest["dataset"], manifest["version"]["name"]) == ("mono", "v1")
    batches = read_all(version, batch_size=4)
    assert sum(len(b["input_ids"]) for b in batches) == manifest["totals"]["records"]
    assert all(b["input_ids"].shape[1] == 128 for b in batches)


def test_reads_an_instruct_split_with_segments_and_target_mask(instruct_version, sample_tokenizer):
    """A split folder of an --all_holdouts version is a stream of its own; its root is an index
    refused with the split to read instead. Segments count 1, 2, ... (0 = padding) and each
    example's loss mask covers its target and the closing end-of-text, nothing of the prompt."""
    from schemas.tokenizer import Tokenizer

    eot = Tokenizer(sample_tokenizer.read_bytes()).eot_id
    with pytest.raises(dv.DatasetError, match="holdout-closed_book_qa"):
        data.PackedDataset(str(instruct_version), batch_size=2)
    split = instruct_version / "holdout-sentiment"
    manifest = dv.read_manifest(str(split))
    assert dv.version_label(manifest) == "instruct/v1/holdout-sentiment"
    for fmt in ("arrow", "tfrecord"):
        batches = read_all(split, batch_size=3, fmt=fmt)
        assert sum(len(b["input_ids"]) for b in batches) == manifest["totals"]["records"] > 0
        examples = 0
        for batch in batches:
            for ids, mask, seg in zip(batch["input_ids"], batch["loss_mask"], batch["segment_ids"]):
                used = int((seg > 0).sum())
                assert (seg[used:] == 0).all() and (mask[used:] == 0).all()
                assert seg[:used].tolist() == sorted(seg[:used].tolist()) and int(seg[0]) == 1
                for s in range(1, int(seg.max()) + 1):
                    where = torch.nonzero(seg == s).flatten()
                    target = mask[where].bool()
                    first = int(torch.argmax(target.int()))
                    assert ids[where[-1]] == eot and target[-1] and target[first:].all() and first > 0
                    examples += 1
        assert examples == manifest["totals"]["documents"]


def test_a_shard_linked_outside_the_version_is_refused_before_it_is_read(numbered_version, tmp_path):
    """The link's target holds the very bytes, so the sha256 check would pass: the path check refuses it."""
    version = tmp_path / "version"
    shutil.copytree(numbered_version, version)
    name = dv.shard_files(dv.read_manifest(str(version)), "arrow")[0]["path"]
    (tmp_path / name).write_bytes((version / name).read_bytes())
    (version / name).unlink()
    (version / name).symlink_to(tmp_path / name)
    with pytest.raises(dv.OutsideVersion, match=f"{name}' leads outside the version folder"):
        data.PackedDataset(str(version), batch_size=4)
    data.PackedDataset(str(version), batch_size=4, fmt="tfrecord")  # the other format's files are inside


@pytest.mark.parametrize("path", ["../../../etc/passwd", "/dev/zero"])
def test_a_manifest_path_out_of_the_folder_is_an_invalid_manifest(numbered_version, tmp_path, path):
    version = tmp_path / "version"
    shutil.copytree(numbered_version, version)
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["shards"][0]["files"][1]["path"] = path
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(dv.DatasetError, match=f"invalid manifest \\(shards\\[0\\].files\\[1\\].path '{path}'"):
        data.PackedDataset(str(version), batch_size=4)
