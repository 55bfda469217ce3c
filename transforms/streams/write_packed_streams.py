"""The tail every corpus shares: tokenize, shuffle globally, pack and write the shards.

Documents in; per-shard TFRecord and Arrow files out, plus ``shards.json`` (one stats entry per
shard, a bounded list) for the driver's manifest, and optionally ``languages.json``: documents,
bytes and tokens per language, summed by a combiner (one entry per language).
"""

from __future__ import annotations

import apache_beam as beam

from transforms.streams.shuffle import GroupIntoShuffledShards
from transforms.stats.run_stats import WriteJson
from transforms.streams.shard_writer import PackAndWriteShards
from transforms.streams.tokenize import Tokenize


def sum_tuples(tuples):
    """Element-wise sum of equal-length tuples of ints (a combiner: associative, commutative)."""
    total = None
    for item in tuples:
        total = tuple(item) if total is None else tuple(a + b for a, b in zip(total, item))
    return total


class WritePackedStreams(beam.PTransform):
    """Documents -> shard files under ``output``; returns the shard stats PCollection."""

    def __init__(self, output: str, tokenizer_path: str, *, seq_len: int, num_shards: int,
                 seed: int, pack_tail: str, eot_id: int, pad_id: int, stats_path: str,
                 prefix_language_tag: bool = False, language_stats_path: str | None = None):
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
        self._language_stats_path = language_stats_path

    def expand(self, documents):
        tally = self._language_stats_path is not None
        tokenized = documents | "Tokenize" >> Tokenize(self._tokenizer_path, self._prefix_language_tag, tally)
        if tally:
            tokenized, tallies = tokenized
            (tallies
             | "SumPerLanguage" >> beam.CombinePerKey(sum_tuples)
             | "AllLanguages" >> beam.combiners.ToList()
             | "SortLanguages" >> beam.Map(sorted)
             | "WriteLanguageStats" >> WriteJson(self._language_stats_path))
        stats = (
            tokenized
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
