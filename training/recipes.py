"""Reading a Sluice dataset version with other frameworks' own readers: tf.data and Hugging Face
``datasets``. Each recipe is a few lines on top of the manifest (shard list and sequence length);
the libraries are imported only when a recipe is called, and neither is a Sluice dependency.

Both read the shards in manifest order with no rank split or checksum; use
:class:`training.data.PackedDataset` for those. ``version`` may be an alias (``ROOT/DATASET/@ALIAS``),
resolved once per call.
"""

from __future__ import annotations

from schemas import dataset_version as dv
from schemas.tf_example import Example
from schemas import tfrecord


def tfrecord_features(version: str) -> dict:
    """``{column: seq_len}`` of a version's TFRecord stream, read from its first record."""
    version = dv.resolve(version)
    manifest = dv.read_stream_manifest(version)
    for shard in dv.shard_files(manifest, "tfrecord"):
        if shard["records"]:
            import fsspec

            with fsspec.open(dv.member_path(version, shard["path"]), "rb") as handle:
                example = Example.FromString(next(tfrecord.read_records(handle)))
            return {name: len(f.int64_list.value) for name, f in sorted(example.features.feature.items())}
    raise dv.DatasetError(f"{version}: no records")


def tf_dataset(version: str):
    """A ``tf.data.Dataset`` of ``{column: int64 [seq_len]}`` over the version's TFRecord shards."""
    import tensorflow as tf

    version = dv.resolve(version)
    manifest = dv.read_stream_manifest(version)
    files = [dv.member_path(version, s["path"]) for s in dv.shard_files(manifest, "tfrecord")]
    spec = {name: tf.io.FixedLenFeature([length], tf.int64) for name, length in tfrecord_features(version).items()}
    return tf.data.TFRecordDataset(files).map(lambda record: tf.io.parse_single_example(record, spec))


def hf_dataset(version: str):
    """A Hugging Face ``datasets.Dataset`` over the version's Arrow shards (memory-mapped: the
    shards are Arrow IPC streams, the format of ``datasets``' own cache files)."""
    import datasets

    version = dv.resolve(version)
    manifest = dv.read_stream_manifest(version)
    parts = [datasets.Dataset.from_file(dv.member_path(version, s["path"]))
             for s in dv.shard_files(manifest, "arrow") if s["records"]]  # datasets cannot type an empty one
    return datasets.concatenate_datasets(parts)
