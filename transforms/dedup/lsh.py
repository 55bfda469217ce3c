"""LSH for near-dedup: each document's band keys, gathered per LSH shard, and each shard's buckets.

Bands and rows come from datasketch's optimiser for the threshold (``NearDedupConfig.bands_rows``),
weighted towards recall since verification removes false positives. Each document has one 64-bit
key per band (a hash of the band index, the language scope and the band's values) and a bucket is
the set of documents sharing a key; a bucket links every member to its smallest member (star
edges: linear in the bucket's size). Keys are spread over LSH shards (key mod shards) and travel
as one batch per shard per bundle, so the shuffle moves a few records per bundle, not one per band
(Beam's per-record cost was most of the stage's time); a shard's batches are sorted by key in
numpy to find the buckets. A shard's worker holds its keys in memory, about 100 bytes each with
their labels: documents x bands / ``lsh_shards``. The default 4,096 shards keep that near 150 MB
for 250 million documents (about 1 TB of code); raise ``--lsh_shards`` in proportion beyond.
(Sizing the shards from a document count instead needs a side input, which on Beam's local runner
breaks the signature stage's fusion and cost 10% of the whole stage.) Buckets carry only labels,
never signatures.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms.dedup.near_nodes import LINK, Node
from transforms.dedup.polyhash import splitmix64
from transforms.stats.counting import count

if TYPE_CHECKING:
    from transforms.dedup.near import NearDedupConfig


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values starts in a sorted, non-empty array."""
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return np.flatnonzero(first)


class BandKeysFn(beam.DoFn):
    """Each document's band keys, gathered per LSH shard over a bundle: ``(shard, (keys, labels))``
    with ``keys`` a uint64 array's bytes and ``labels`` the matching document labels. Keys are
    computed for up to ``_BATCH`` documents at once (numpy over a [documents, bands] array)."""

    _BATCH = 4096  # documents held before their keys go out, whatever the bundle's size

    def __init__(self, config: NearDedupConfig):
        self._bands, self._rows = config.bands_rows()
        self._per_language = config.per_language
        self._shards = np.uint64(config.lsh_shards)
        # One salt per band, so equal values in different bands are different keys.
        self._salts = splitmix64(np.arange(1, self._bands + 1, dtype=np.uint64))
        self._multipliers = splitmix64(np.arange(101, 101 + self._rows, dtype=np.uint64)) | np.uint64(1)

    def start_bundle(self):
        self._labels, self._signatures, self._scopes = [], [], []

    def process(self, keyed):
        node = Node(*keyed[1][1])
        self._labels.append(node.label)
        self._signatures.append(node.signature)
        self._scopes.append(node.language if self._per_language else "")
        if len(self._labels) >= self._BATCH:
            yield from self._flush()

    def finish_bundle(self):
        for shard, batch in self._flush():
            yield WindowedValue((shard, batch), MIN_TIMESTAMP, [GlobalWindow()])

    def _keys(self) -> np.ndarray:
        """uint64[documents, bands]: a hash of each band's values, its band and its scope."""
        signatures = np.frombuffer(b"".join(self._signatures), dtype=np.uint32).reshape(len(self._labels), -1)
        values = signatures[:, : self._bands * self._rows].reshape(-1, self._bands, self._rows).astype(np.uint64)
        keys = splitmix64((values * self._multipliers).sum(axis=2, dtype=np.uint64) ^ self._salts)
        if any(self._scopes):
            scopes = np.array([int.from_bytes(hashlib.blake2b(scope.encode("utf-8"), digest_size=8).digest(), "big")
                               if scope else 0 for scope in self._scopes], dtype=np.uint64)
            keys = np.where(scopes[:, None] != 0, splitmix64(keys ^ scopes[:, None]), keys)
        return keys

    def _flush(self):
        if not self._labels:
            return
        labels, keys = self._labels, self._keys().ravel()
        self._labels, self._signatures, self._scopes = [], [], []
        shards = keys % self._shards
        order = np.argsort(shards, kind="stable")
        keys, shards = keys[order], shards[order]
        documents = (order // self._bands).tolist()
        starts = _run_starts(shards).tolist() + [len(order)]
        for first, end in zip(starts[:-1], starts[1:]):
            yield int(shards[first]), (keys[first:end].tobytes(), [labels[d] for d in documents[first:end]])


class BucketStarFn(beam.DoFn):
    """One LSH shard: its keys sorted, and each bucket's members linked to the smallest one.

    A similar pair shares most of its bands, so the same edge comes out of up to ``bands``
    buckets: edges already sent in this bundle are not sent again (a bounded set, cleared when
    full; a repeat that gets through is merged downstream, where a member's centers are a set).
    On the code benchmark this sends a sixth of the edges."""

    _SEEN_MAX = 200_000

    def __init__(self, stage: str):
        self._stage = stage

    def start_bundle(self):
        self._seen = set()

    def process(self, shard):
        _, batches = shard
        keys, labels = [], []
        for key_bytes, batch_labels in batches:
            keys.append(np.frombuffer(key_bytes, dtype=np.uint64))
            labels.extend(batch_labels)
        keys = np.concatenate(keys)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = _run_starts(ordered)  # a bucket starts where the key changes
        sizes = np.diff(starts, append=ordered.size)
        shared = sizes > 1
        for start, size in zip(starts[shared].tolist(), sizes[shared].tolist()):
            members = [labels[i] for i in order[start:start + size].tolist()]
            smallest = min(members)
            for label in members:
                edge = (smallest, label)
                if label != smallest and edge not in self._seen:
                    if len(self._seen) >= self._SEEN_MAX:
                        self._seen.clear()
                    self._seen.add(edge)
                    yield label, (LINK, smallest)  # keyed by the member, for its signature
        if shared.any():
            count(self._stage, "lsh_buckets", int(shared.sum()))
            count(self._stage, "lsh_bucket_members", int(sizes[shared].sum()))
