"""Write packed shards as TFRecord and Arrow stream files, with their size and sha256.

Beam's file sinks choose their own shard boundaries and element order; Sluice needs shard ``i``
to hold exactly its key-ordered sequences, byte for byte on every run, so each shard is written
by one DoFn call through Beam's FileSystems (local, ``gs://``, ...). A file is written under a
temporary name and renamed into place, so a retried bundle never leaves a half-written shard; the
content is deterministic, so a retry that renames again writes the same bytes.
"""

from __future__ import annotations

import hashlib
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.packed_stream import shard_name, write_arrow_stream, write_tfrecord_shard
from transforms.stats.counting import count
from transforms.streams.packing import pack

STAGE = "pack"
FORMATS = {"tfrecord": write_tfrecord_shard, "arrow": write_arrow_stream}


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, raw):
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data):
        data = bytes(data)
        self.sha256.update(data)
        self.size += len(data)
        self._raw.write(data)
        return len(data)

    def tell(self):
        return self.size

    def flush(self):
        pass

    def writable(self):
        return True

    def close(self):
        self.closed = True


def write_atomically(path: str, write) -> tuple[int, str]:
    """Write ``path`` through ``write(fileobj)`` via a temporary name; returns (bytes, sha256)."""
    folder, name = path.rsplit("/", 1)
    temporary = f"{folder}/.tmp-{uuid.uuid4().hex}-{name}"
    raw = FileSystems.create(temporary)
    writer = _HashingWriter(raw)
    try:
        write(writer)
    except BaseException:
        # A failed write leaves no half file behind: a reader's glob (a manifest's '*.jsonl')
        # must never take a temporary name for a complete file.
        raw.close()
        FileSystems.delete([temporary])
        raise
    raw.close()
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])
    return writer.size, writer.sha256.hexdigest()


def pack_documents(index, docs, seq_len, eot_id, pad_id, tail):
    """The corpora's packer: ``(key, id, int32 token bytes)`` documents, end-of-text after each."""
    import numpy as np

    arrays = (np.frombuffer(tokens, dtype="<i4") for _, _, tokens in docs)
    return pack(index, arrays, seq_len, eot_id, pad_id, tail)


class _PackAndWriteFn(beam.DoFn):
    def __init__(self, output_dir, num_shards, seq_len, eot_id, pad_id, tail, formats,
                 pack_fn=pack_documents, stage=STAGE):
        self._output_dir = output_dir.rstrip("/")
        self._stage = stage
        self._num_shards = num_shards
        self._seq_len = seq_len
        self._eot_id = eot_id
        self._pad_id = pad_id
        self._tail = tail
        self._formats = formats
        self._pack_fn = pack_fn

    def process(self, item):
        index, docs = item
        packed = self._pack_fn(index, docs, self._seq_len, self._eot_id, self._pad_id, self._tail)
        sequences = int(packed.input_ids.shape[0])
        count(self._stage, "sequences", sequences)
        count(self._stage, "documents", packed.documents)
        count(self._stage, "tail_tokens", packed.tail_tokens)
        count(self._stage, "dropped_tail_tokens", packed.dropped_tokens)
        files = []
        for fmt in self._formats:
            name = shard_name(index, self._num_shards, fmt)

            def write(fileobj, fmt=fmt):
                if packed.segment_ids is None:
                    FORMATS[fmt](fileobj, packed.input_ids, packed.loss_mask)
                else:
                    FORMATS[fmt](fileobj, packed.input_ids, packed.loss_mask,
                                 segment_ids=packed.segment_ids)

            size, digest = write_atomically(f"{self._output_dir}/{name}", write)
            files.append({"path": name, "format": fmt, "bytes": size, "sha256": digest})
        if packed.segment_ids is not None:  # the loss mask also leaves out inputs: padding is segment 0
            padding = int((packed.segment_ids == 0).sum())
        else:
            padding = 0 if packed.loss_mask is None else int(packed.loss_mask.size - packed.loss_mask.sum())
        yield {
            "shard": index,
            "records": sequences,
            "tokens": sequences * self._seq_len,
            "padding_tokens": padding,
            "documents": packed.documents,
            "document_tokens": packed.document_tokens,
            "tail_tokens": packed.tail_tokens,
            "dropped_tail_tokens": packed.dropped_tokens,
            "files": files,
        }


class PackAndWriteShards(beam.PTransform):
    """Pack each ``(shard, sorted docs)`` and write its files; yields one stats dict per shard.

    ``pack_fn(index, docs, seq_len, eot_id, pad_id, tail) -> PackedShard`` packs a shard's items;
    the default packs documents (the corpora), instruction mixtures pass their example packer.
    ``stage`` names the counters' stage (a job writing several streams gives each its own).
    """

    def __init__(self, output_dir, num_shards, seq_len, eot_id, pad_id, tail="drop",
                 formats=("tfrecord", "arrow"), pack_fn=pack_documents, stage=STAGE):
        super().__init__()
        self._fn = _PackAndWriteFn(output_dir, num_shards, seq_len, eot_id, pad_id, tail, formats,
                                   pack_fn, stage)

    def expand(self, shards):
        return shards | beam.ParDo(self._fn)
