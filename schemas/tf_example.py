"""``tf.train.Example`` protobuf classes, built without TensorFlow or protoc.

Why hand-built: TensorFlow is a multi-hundred-MB dependency that neither the
Beam workers nor the readers should need just to write/read Examples, and
protoc-generated ``*_pb2.py`` files must match the installed protobuf runtime
version. Instead we describe tensorflow/core/example/{feature,example}.proto
as a ``FileDescriptorProto`` in code (same package, names, field numbers and
packing, so the wire format is identical) and let the runtime build the
classes in a private ``DescriptorPool`` (no clash with a real TF, if loaded).
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _field(msg, name, number, ftype, label=_F.LABEL_OPTIONAL, type_name=None,
           packed=None, oneof_index=None):
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if packed is not None:
        f.options.packed = packed
    if oneof_index is not None:
        f.oneof_index = oneof_index
    return f


def _build_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="sluice/tensorflow/core/example/example.proto",
        package="tensorflow", syntax="proto3")
    rep = _F.LABEL_REPEATED

    m = fd.message_type.add(name="BytesList")
    _field(m, "value", 1, _F.TYPE_BYTES, rep)
    m = fd.message_type.add(name="FloatList")
    _field(m, "value", 1, _F.TYPE_FLOAT, rep, packed=True)
    m = fd.message_type.add(name="Int64List")
    _field(m, "value", 1, _F.TYPE_INT64, rep, packed=True)

    m = fd.message_type.add(name="Feature")
    m.oneof_decl.add(name="kind")
    _field(m, "bytes_list", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.BytesList", oneof_index=0)
    _field(m, "float_list", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.FloatList", oneof_index=0)
    _field(m, "int64_list", 3, _F.TYPE_MESSAGE, type_name=".tensorflow.Int64List", oneof_index=0)

    m = fd.message_type.add(name="Features")
    entry = m.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.Feature")
    _field(m, "feature", 1, _F.TYPE_MESSAGE, rep, type_name=".tensorflow.Features.FeatureEntry")

    m = fd.message_type.add(name="Example")
    _field(m, "features", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.Features")
    return fd


_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(_build_file().SerializeToString())


def _cls(name: str):
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"tensorflow.{name}"))


BytesList = _cls("BytesList")
FloatList = _cls("FloatList")
Int64List = _cls("Int64List")
Feature = _cls("Feature")
Features = _cls("Features")
Example = _cls("Example")

IntValues = Union[Sequence[int], np.ndarray]


def encode_int64_example(features: Mapping[str, IntValues]) -> bytes:
    """Serialize ``{name: ints}`` as an Example of int64 features.

    Serialization is deterministic (map entries in sorted key order), so equal
    input gives equal bytes.
    """
    ex = Example()
    fmap = ex.features.feature
    for key in sorted(features):
        values = features[key]
        if isinstance(values, np.ndarray):
            values = values.astype(np.int64, copy=False).ravel().tolist()
        fmap[key].int64_list.value.extend(values)
    return ex.SerializeToString(deterministic=True)


def decode_int64_example(data: bytes) -> dict[str, np.ndarray]:
    """Parse Example bytes into ``{name: int64 array}``; non-int64 features raise."""
    ex = Example.FromString(data)
    out = {}
    for key, feat in ex.features.feature.items():
        kind = feat.WhichOneof("kind")
        if kind not in ("int64_list", None):
            raise ValueError(f"feature {key!r} is {kind}, expected int64_list")
        values = feat.int64_list.value
        out[key] = np.fromiter(values, dtype=np.int64, count=len(values))
    return out
