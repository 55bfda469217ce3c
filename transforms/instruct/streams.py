"""Tokenize rendered examples, pack several a sequence with segment ids, and write the streams.

An example is ``encode(input + "\\n")`` truncated to ``max_input_tokens``, then ``encode(target)``
truncated to ``max_target_tokens`` and end-of-text; truncations are counted. Packing keeps every
example whole: in the shuffle order (the corpora's global shuffle) examples fill a row of
``seq_len`` until the next does not fit, then the row is padded. ``segment_ids`` number the
examples of a row 1, 2, 3... (0 = padding) and ``loss_mask`` is 1 exactly on target tokens and the
end-of-text that closes them (the model learns when to stop), so a trainer masks attention across
segments and trains on targets only. Shards go through the corpora's shard writer; the evaluation
set (held-out tasks, unpacked, one record per example and forward template) is TFRecord in the
layout of ``schemas/instruct_eval.py``.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np

from schemas.instruct_eval import EvalRecord, encode_eval_record
from schemas.instruct_example import RenderedExample
from schemas.tfrecord import write_record
from transforms.stats.counting import KEPT, count
from transforms.streams.shuffle import GroupIntoShuffledShards
from transforms.streams.packing import PackedShard
from transforms.stats.run_stats import WriteJson
from transforms.streams.shard_writer import STAGE as PACK_STAGE
from transforms.streams.shard_writer import PackAndWriteShards, write_atomically
from transforms.streams.tokenize import load_tokenizer

TOKENIZE_STAGE = "instruct_tokenize"
EVAL_STAGE = "instruct_eval"
INPUT_SEPARATOR = "\n"


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    """A rendered example and its tokens: ``tokens`` is (input ids, target ids) as int32 bytes."""

    example: RenderedExample
    tokens: tuple

    @property
    def id(self) -> str:
        return self.example.id

    @property
    def task(self) -> str:
        return self.example.task


class _TokenizeFn(beam.DoFn):
    def __init__(self, model_path: str, max_input_tokens: int, max_target_tokens: int):
        self._model_path = model_path
        self._max_input = max_input_tokens
        self._max_target = max_target_tokens
        self._tokenizer = None

    def setup(self):
        self._tokenizer = load_tokenizer(self._model_path)

    def process(self, example):
        inputs = self._tokenizer.encode_array(example.input + INPUT_SEPARATOR)
        targets = self._tokenizer.encode_array(example.target)
        if inputs.size > self._max_input:
            count(TOKENIZE_STAGE, "truncated_inputs")
            inputs = inputs[:self._max_input]
        if targets.size > self._max_target:
            count(TOKENIZE_STAGE, "truncated_targets")
            targets = targets[:self._max_target]
        count(TOKENIZE_STAGE, KEPT)
        yield TokenizedExample(example, (inputs.astype("<i4").tobytes(), targets.astype("<i4").tobytes()))


class TokenizeExamples(beam.PTransform):
    def __init__(self, model_path: str, max_input_tokens: int, max_target_tokens: int):
        super().__init__()
        self._fn = _TokenizeFn(model_path, max_input_tokens, max_target_tokens)

    def expand(self, examples):
        return examples | beam.ParDo(self._fn)


def pack_examples(index, items, seq_len, eot_id, pad_id, tail="pad") -> PackedShard:
    """Pack a shard's ``(key, id, (input bytes, target bytes))`` items, in order, whole, with
    segment ids and a loss mask over targets (+ end-of-text); each row's unused end is padding."""
    rows_ids, rows_mask, rows_segments = [], [], []
    ids = np.full(seq_len, pad_id, dtype=np.int32)
    mask = np.zeros(seq_len, dtype=np.int8)
    segments = np.zeros(seq_len, dtype=np.int32)
    fill, segment, examples, example_tokens = 0, 0, 0, 0
    for _, example_id, (input_bytes, target_bytes) in items:
        inputs = np.frombuffer(input_bytes, dtype="<i4")
        targets = np.frombuffer(target_bytes, dtype="<i4")
        length = inputs.size + targets.size + 1
        if length > seq_len:
            raise ValueError(f"example {example_id} has {length} tokens, over seq_len {seq_len}")
        if fill + length > seq_len:
            rows_ids.append(ids), rows_mask.append(mask), rows_segments.append(segments)
            ids = np.full(seq_len, pad_id, dtype=np.int32)
            mask = np.zeros(seq_len, dtype=np.int8)
            segments = np.zeros(seq_len, dtype=np.int32)
            fill, segment = 0, 0
        segment += 1
        end_input = fill + inputs.size
        ids[fill:end_input] = inputs
        ids[end_input:end_input + targets.size] = targets
        ids[fill + length - 1] = eot_id
        mask[end_input:fill + length] = 1
        segments[fill:fill + length] = segment
        fill += length
        examples += 1
        example_tokens += length
    if fill:
        rows_ids.append(ids), rows_mask.append(mask), rows_segments.append(segments)

    def stack(rows, dtype):
        return np.stack(rows) if rows else np.zeros((0, seq_len), dtype=dtype)

    return PackedShard(index=index, input_ids=stack(rows_ids, np.int32), loss_mask=stack(rows_mask, np.int8),
                       documents=examples, document_tokens=example_tokens, tail_tokens=0, dropped_tokens=0,
                       segment_ids=stack(rows_segments, np.int32))


class WriteMixture(beam.PTransform):
    """A split's TokenizedExamples -> packed shards under ``output`` and their stats JSON."""

    def __init__(self, output, *, seq_len, num_shards, seed, eot_id, pad_id, stats_path, stage=PACK_STAGE):
        super().__init__()
        self._stage = stage
        self._output = output
        self._seq_len = seq_len
        self._num_shards = num_shards
        self._seed = seed
        self._eot_id = eot_id
        self._pad_id = pad_id
        self._stats_path = stats_path

    def expand(self, tokenized):
        stats = (tokenized
                 | "GlobalShuffle" >> GroupIntoShuffledShards(self._num_shards, self._seed)
                 | "PackAndWrite" >> PackAndWriteShards(
                     self._output, self._num_shards, self._seq_len, self._eot_id, self._pad_id,
                     "pad", pack_fn=pack_examples, stage=self._stage))
        (stats | "AllShardStats" >> beam.combiners.ToList()
         | "WriteShardStats" >> WriteJson(self._stats_path))
        return stats


def eval_record(example: RenderedExample, input_bytes: bytes, target_bytes: bytes) -> bytes:
    """One evaluation example under one forward template as a tf.train.Example
    (``schemas/instruct_eval.py``): token ids unpacked, its texts, task, cluster, template, metrics,
    references and options."""
    return encode_eval_record(EvalRecord(
        task=example.task, cluster=example.cluster, id=example.id, template=example.template,
        metrics=example.metrics, input=example.input, target=example.target, references=example.references,
        options=example.options, input_ids=tuple(np.frombuffer(input_bytes, dtype="<i4").tolist()),
        target_ids=tuple(np.frombuffer(target_bytes, dtype="<i4").tolist())))


class _WriteEvalShardFn(beam.DoFn):
    def __init__(self, folder: str, num_shards: int, stage: str):
        self._folder = folder.rstrip("/")
        self._num_shards = num_shards
        self._stage = stage

    def process(self, item):
        from schemas.packed_stream import shard_name

        index, items = item
        tasks: dict = {}

        def write(fileobj):
            for _, _, (example, input_bytes, target_bytes) in items:
                tasks[example.task] = tasks.get(example.task, 0) + 1
                write_record(fileobj, eval_record(example, input_bytes, target_bytes))

        name = shard_name(index, self._num_shards, "tfrecord", prefix="eval")
        size, digest = write_atomically(f"{self._folder}/{name}", write)
        count(self._stage, "examples", len(items))
        yield {"shard": index, "path": f"eval/{name}", "examples": len(items), "bytes": size,
               "sha256": digest, "tasks": dict(sorted(tasks.items()))}


def _eval_item(tokenized: TokenizedExample):
    from schemas.records import TokenizedDocument

    input_bytes, target_bytes = tokenized.tokens
    # An example is written once per forward template: the shuffle's id names both, so every item's
    # key is its own (and equal keys never compare the examples themselves).
    shuffle_id = f"{tokenized.id}@{tokenized.example.template}"
    return TokenizedDocument(id=shuffle_id, tokens=(tokenized.example, input_bytes, target_bytes))


class WriteEvalSet(beam.PTransform):
    """Held-out tasks' TokenizedExamples -> ``eval/eval-*.tfrecord`` in hash order, and stats JSON."""

    def __init__(self, folder: str, *, num_shards: int, seed: int, stats_path: str, stage: str = EVAL_STAGE):
        super().__init__()
        self._stage = stage
        self._folder = folder
        self._num_shards = num_shards
        self._seed = seed
        self._stats_path = stats_path

    def expand(self, tokenized):
        stats = (tokenized
                 | "AsItems" >> beam.Map(_eval_item)
                 | "Shuffle" >> GroupIntoShuffledShards(self._num_shards, self._seed)
                 | "Write" >> beam.ParDo(_WriteEvalShardFn(self._folder, self._num_shards, self._stage)))
        (stats | "AllEvalStats" >> beam.combiners.ToList()
         | "WriteEvalStats" >> WriteJson(self._stats_path))
        return stats
