"""Deterministic global shuffle: a document's place follows from ``hash(seed, id)`` alone.

The 64-bit key of a document is BLAKE2b over the seed and its id; its shard is ``key % num_shards``
and its order inside the shard is key order (ties, which need a 64-bit collision, by id). No step
sees more than one shard, every worker count and every rerun gives the same order, and a shard
with no documents still exists (it is written empty) so shard names always run 0..N-1.

Memory: a shard's documents are sorted in one worker's memory as compact int32 token arrays
(4 bytes a token). Choose ``--num_shards`` so a shard stays well under a worker's memory, e.g.
about 100-500M tokens a shard: at 1 TB of code (~300B tokens) that is ~1,000 shards.
"""

from __future__ import annotations

import hashlib

import apache_beam as beam


def shuffle_key(seed: int, doc_id: str) -> int:
    """The document's 64-bit shuffle key."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class _KeyByShard(beam.DoFn):
    def __init__(self, seed: int, num_shards: int):
        self._seed = seed
        self._num_shards = num_shards

    def process(self, doc):
        key = shuffle_key(self._seed, doc.id)
        yield key % self._num_shards, (key, doc.id, doc.tokens)


def _sorted_shard(item):
    shard, grouped = item
    return shard, sorted(grouped["docs"])


class GroupIntoShuffledShards(beam.PTransform):
    """``(shard, [(key, id, tokens), ...] in key order)`` for every shard index 0..num_shards-1."""

    def __init__(self, num_shards: int, seed: int):
        super().__init__()
        self._num_shards = num_shards
        self._seed = seed

    def expand(self, tokenized):
        keyed = tokenized | "KeyByShard" >> beam.ParDo(_KeyByShard(self._seed, self._num_shards))
        every_shard = (
            tokenized.pipeline
            | "ShardIndices" >> beam.Create([(i, None) for i in range(self._num_shards)])
        )
        return (
            {"docs": keyed, "shard": every_shard}
            | "GroupByShard" >> beam.CoGroupByKey()
            | "SortInShard" >> beam.Map(_sorted_shard)
        )
