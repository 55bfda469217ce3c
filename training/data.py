"""PyTorch reader of a Sluice dataset version: batches for any trainer, split without overlap or gap.

Order. An epoch visits the shards in a permutation drawn from ``(seed, epoch)`` and each shard's
rows in file order (the pipeline already shuffled rows globally). That gives every sequence a
global index ``g``. Data-parallel rank ``r`` of ``world`` takes ``g % world == r`` and cuts its
sequences into batches of ``batch_size``; batch ``j`` of a rank goes to DataLoader worker
``(j - start) % num_workers``. DataLoader collects worker outputs round robin, so a rank sees its
batches 0, 1, 2, ... whatever the worker count, and the union over ranks is the epoch exactly.

Resume. A batch carries its ``(epoch, batch)`` position; the state to save is the position after
the last batch consumed (:meth:`PackedDataset.state_after`), and a dataset built with that state
yields exactly the batch that would have come next.

Checks. Each shard file's size and sha256 are checked against the manifest once per process
before its rows are used (``verify="first_open"``), or never (``verify="never"``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from schemas import dataset_version as dv
from schemas import shard_batches

_VERIFIED: set = set()


def shard_order(num_shards: int, seed: int, epoch: int) -> np.ndarray:
    """The shards' visiting order for an epoch: a permutation from (seed, epoch), nothing else."""
    return np.random.Generator(np.random.PCG64([seed, epoch])).permutation(num_shards)


class PackedDataset(IterableDataset):
    """Batches ``{column: tensor [b, seq_len], "epoch": int, "batch": int}`` of a dataset version.

    ``data``: version folder (local or fsspec URL). ``fmt``: ``arrow`` or ``tfrecord``. Columns are
    every column the stream has (``input_ids`` int32, ``loss_mask`` int8, ``segment_ids`` int32...).
    ``epochs``: how many epochs to run from the start state (``None``: forever).
    """

    def __init__(self, data: str, batch_size: int, *, fmt: str = "arrow", seed: int = 0,
                 rank: int = 0, world_size: int = 1, state: Optional[dict] = None,
                 epochs: Optional[int] = 1, verify: str = "first_open"):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        if verify not in ("first_open", "never"):
            raise ValueError("verify must be 'first_open' or 'never'")
        self.data, self.fmt, self.batch_size, self.seed = data, fmt, batch_size, seed
        self.rank, self.world_size, self.verify, self.epochs = rank, world_size, verify, epochs
        self.manifest = dv.read_stream_manifest(data)
        # each shard's file, checked to be inside the version folder before anything is opened
        self.shards = [{**s, "url": dv.member_path(data, s["path"])} for s in dv.shard_files(self.manifest, fmt)]
        self.total = sum(s["records"] for s in self.shards)
        if self.total < world_size:
            raise dv.DatasetError(f"{data}: {self.total} sequences cannot feed {world_size} ranks")
        state = state or {"epoch": 0, "batch": 0}
        self.start_epoch, self.start_batch = int(state["epoch"]), int(state["batch"])

    # Sizes -------------------------------------------------------------------------------------
    def rank_sequences(self) -> int:
        """Sequences this rank gets per epoch (ranks differ by at most one)."""
        return len(range(self.rank, self.total, self.world_size))

    def batches_per_epoch(self) -> int:
        return -(-self.rank_sequences() // self.batch_size)

    def state_after(self, batch: dict) -> dict:
        """The resume state after consuming ``batch``: the position of the batch that follows it."""
        epoch, index = int(batch["epoch"]), int(batch["batch"]) + 1
        if index >= self.batches_per_epoch():
            epoch, index = epoch + 1, 0
        return {"epoch": epoch, "batch": index}

    # Iteration ---------------------------------------------------------------------------------
    def _url(self, shard: dict) -> str:
        url = shard["url"]
        if self.verify == "first_open" and url not in _VERIFIED:
            dv.verify_file(url, shard["bytes"], shard["sha256"])
            _VERIFIED.add(url)
        return url

    def _epoch_batches(self, epoch: int, first_batch: int, k0: int, worker: int, num_workers: int):
        """Yield this worker's batches of one epoch from batch ``first_batch`` on; that batch is the
        ``k0``-th the iterator yields overall, and the k-th goes to worker ``k % num_workers``."""
        b, world, rank = self.batch_size, self.world_size, self.rank
        pending: dict = {}  # batch index -> [row count, list of {column: rows} chunks], filled in order
        offset = 0
        for shard_index in shard_order(len(self.shards), self.seed, epoch):
            shard = self.shards[shard_index]
            lo, hi = offset, offset + shard["records"]
            offset = hi
            # This rank's global indices in [lo, hi), their batches, and the ones this worker makes.
            g = np.arange(lo + (rank - lo) % world, hi, world)
            j = (g // world) // b
            keep = (j >= first_batch) & ((k0 + j - first_batch) % num_workers == worker)
            if not keep.any():
                continue  # not even opened: nothing of this worker's is in it
            wanted_j = dict(zip((g[keep] - lo).tolist(), j[keep].tolist()))
            for local, columns in shard_batches.iter_selected(self._url(shard), self.fmt, g[keep] - lo, shard["records"]):
                batch_of = np.fromiter((wanted_j[i] for i in local.tolist()), dtype=np.int64, count=len(local))
                cuts = np.flatnonzero(np.diff(batch_of)) + 1
                for part in np.split(np.arange(len(local)), cuts):
                    index = int(batch_of[part[0]])
                    entry = pending.setdefault(index, [0, []])
                    entry[0] += len(part)
                    entry[1].append({k: v[part] for k, v in columns.items()})
                    if entry[0] == b:
                        yield self._collate(epoch, index, pending.pop(index)[1])
        for index in sorted(pending):  # only a rank's last batch of the epoch can be short
            yield self._collate(epoch, index, pending.pop(index)[1])

    def _collate(self, epoch: int, index: int, chunks: list) -> dict:
        out = {k: torch.from_numpy(np.concatenate([c[k] for c in chunks])) for k in chunks[0]}
        out["epoch"], out["batch"] = epoch, index
        return out

    def __iter__(self):
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        epoch, first, k0 = self.start_epoch, self.start_batch, 0
        per_epoch = self.batches_per_epoch()
        if first >= per_epoch:
            raise ValueError(f"resume state batch {first} >= {per_epoch} batches per epoch")
        while self.epochs is None or epoch < self.start_epoch + self.epochs:
            yield from self._epoch_batches(epoch, first, k0, worker, num_workers)
            k0 += per_epoch - first
            epoch, first = epoch + 1, 0


def loader(dataset: PackedDataset, num_workers: int = 0, **kwargs) -> torch.utils.data.DataLoader:
    """A DataLoader over ready-made batches, order preserved across workers."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=num_workers,
                                       persistent_workers=False, **kwargs)
