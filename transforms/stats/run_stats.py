"""Small run statistics computed inside the job and handed to the driver as JSON files.

Only bounded data travels this way: one entry per output shard, and a fixed-size fingerprint of
all input archives combined (an order-free sum of per-archive hashes, so it is the same whatever
the worker count). The driver reads them to write the manifest.
"""

from __future__ import annotations

import hashlib
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

_MOD = 1 << 256


class ArchiveFingerprintFn(beam.CombineFn):
    """(repo, sha256, bytes, status) tuples -> one fingerprint of the whole input, order-free."""

    def create_accumulator(self):
        return (0, 0, 0, {})

    def add_input(self, acc, archive):
        total, count, size, statuses = acc
        repo, digest, nbytes, status = archive
        item = hashlib.sha256(f"{repo}\x00{digest}".encode()).digest()
        statuses = dict(statuses)
        statuses[status] = statuses.get(status, 0) + 1
        return ((total + int.from_bytes(item, "big")) % _MOD, count + 1, size + nbytes, statuses)

    def merge_accumulators(self, accs):
        total, count, size, statuses = 0, 0, 0, {}
        for t, c, s, st in accs:
            total, count, size = (total + t) % _MOD, count + c, size + s
            for k, v in st.items():
                statuses[k] = statuses.get(k, 0) + v
        return (total, count, size, statuses)

    def extract_output(self, acc):
        total, count, size, statuses = acc
        return {
            "archives": count,
            "compressed_bytes": size,
            "fingerprint": f"{total:064x}",
            "status": dict(sorted(statuses.items())),
        }


def _write_json(value, path):
    with FileSystems.create(path) as handle:
        handle.write(json.dumps(value, sort_keys=True, indent=1).encode("utf-8"))


class WriteJson(beam.PTransform):
    """Write one small value (the single element of a PCollection) as a JSON file."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pcoll):
        return pcoll | beam.Map(_write_json, self._path)


def read_json(path: str):
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))
