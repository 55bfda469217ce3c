"""Shards read back in batches: both formats give the same rows and dtypes, a selection decodes only
its rows, and a shard that holds another number of rows than its manifest says is refused."""

from __future__ import annotations

import numpy as np
import pytest

from schemas import dataset_version as dv

from schemas import version_writer
from schemas import shard_batches
from schemas.files import join


def version(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 300, size=(7, 16), dtype=np.int64)
    segments = np.repeat(np.arange(1, 5), 4)[None, :].repeat(7, axis=0)
    manifest = version_writer.write_version(tmp_path / "d" / "v1", [{"input_ids": ids, "segment_ids": segments}], "d")
    return str(tmp_path / "d" / "v1"), manifest, ids, segments


@pytest.mark.parametrize("fmt", ["arrow", "tfrecord"])
def test_batches_hold_every_row_and_column_with_their_stored_widths(tmp_path, fmt):
    folder, manifest, ids, segments = version(tmp_path)
    shard = dv.shard_files(manifest, fmt)[0]
    batches = list(shard_batches.iter_batches(join(folder, shard["path"]), fmt))
    rows = np.concatenate([b["input_ids"] for b in batches])
    np.testing.assert_array_equal(rows, ids)
    np.testing.assert_array_equal(np.concatenate([b["segment_ids"] for b in batches]), segments)
    assert batches[0]["input_ids"].dtype == np.int32 and batches[0]["segment_ids"].dtype == np.int32


@pytest.mark.parametrize("fmt", ["arrow", "tfrecord"])
def test_selected_rows_come_in_order_and_the_row_count_is_checked(tmp_path, fmt):
    folder, manifest, ids, _ = version(tmp_path)
    url = join(folder, dv.shard_files(manifest, fmt)[0]["path"])
    wanted = np.array([1, 4, 6])
    chunks = list(shard_batches.iter_selected(url, fmt, wanted, records=7, chunk_rows=2))
    np.testing.assert_array_equal(np.concatenate([i for i, _ in chunks]), wanted)
    np.testing.assert_array_equal(np.concatenate([c["input_ids"] for _, c in chunks]), ids[wanted])
    with pytest.raises(dv.DatasetError, match="7 rows, manifest says 8"):
        list(shard_batches.iter_selected(url, fmt, wanted, records=8))
