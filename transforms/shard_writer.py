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
from transforms.counting import count
from transforms.packing import pack

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
    finally:
        raw.close()
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])
    return writer.size, writer.sha256.hexdigest()


class _PackAndWriteFn(beam.DoFn):
    def __init__(self, output_dir, num_shards, seq_len, eot_id, pad_id, tail, formats):
        self._output_dir = output_dir.rstrip("/")
        self._num_shards = num_shards
        self._seq_len = seq_len
        self._eot_id = eot_id
        self._pad_id = pad_id
        self._tail = tail
        self._formats = formats

    def process(self, item):
        import numpy as np

        index, docs = item
        arrays = (np.frombuffer(tokens, dtype="<i4") for _, _, tokens in docs)
        packed = pack(index, arrays, self._seq_len, self._eot_id, self._pad_id, self._tail)
        sequences = int(packed.input_ids.shape[0])
        count(STAGE, "sequences", sequences)
        count(STAGE, "documents", packed.documents)
        count(STAGE, "tail_tokens", packed.tail_tokens)
        count(STAGE, "dropped_tail_tokens", packed.dropped_tokens)
        files = []
        for fmt in self._formats:
            name = shard_name(index, self._num_shards, fmt)

            def write(fileobj, fmt=fmt):
                FORMATS[fmt](fileobj, packed.input_ids, packed.loss_mask)

            size, digest = write_atomically(f"{self._output_dir}/{name}", write)
            files.append({"path": name, "format": fmt, "bytes": size, "sha256": digest})
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
    """Pack each ``(shard, sorted docs)`` and write its files; yields one stats dict per shard."""

    def __init__(self, output_dir, num_shards, seq_len, eot_id, pad_id, tail="drop",
                 formats=("tfrecord", "arrow")):
        super().__init__()
        self._fn = _PackAndWriteFn(output_dir, num_shards, seq_len, eot_id, pad_id, tail, formats)

    def expand(self, shards):
        return shards | beam.ParDo(self._fn)
