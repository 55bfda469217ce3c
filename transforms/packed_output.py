"""The tail every corpus shares: tokenize, shuffle globally, pack and write the shards.

Documents in; per-shard TFRecord and Arrow files out, plus ``shards.json`` (one stats entry per
shard, a bounded list) for the driver's manifest.
"""

from __future__ import annotations

import apache_beam as beam

from transforms.global_shuffle import GroupIntoShuffledShards
from transforms.run_stats import WriteJson
from transforms.shard_writer import PackAndWriteShards
from transforms.tokenize import Tokenize


class WritePackedStreams(beam.PTransform):
    """Documents -> shard files under ``output``; returns the shard stats PCollection."""

    def __init__(self, output: str, tokenizer_path: str, *, seq_len: int, num_shards: int,
                 seed: int, pack_tail: str, eot_id: int, pad_id: int, stats_path: str,
                 prefix_language_tag: bool = False):
        super().__init__()
        self._output = output
        self._tokenizer_path = tokenizer_path
        self._seq_len = seq_len
        self._num_shards = num_shards
        self._seed = seed
        self._pack_tail = pack_tail
        self._eot_id = eot_id
        self._pad_id = pad_id
        self._stats_path = stats_path
        self._prefix_language_tag = prefix_language_tag

    def expand(self, documents):
        stats = (
            documents
            | "Tokenize" >> Tokenize(self._tokenizer_path, self._prefix_language_tag)
            | "GlobalShuffle" >> GroupIntoShuffledShards(self._num_shards, self._seed)
            | "PackAndWrite" >> PackAndWriteShards(
                self._output, self._num_shards, self._seq_len, self._eot_id, self._pad_id,
                self._pack_tail,
            )
        )
        (stats
         | "AllShardStats" >> beam.combiners.ToList()
         | "WriteShardStats" >> WriteJson(self._stats_path))
        return stats
