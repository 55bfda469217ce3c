import numpy as np
import pytest

from schemas import tf_example as tfe


def test_descriptor_mirrors_tensorflow_proto():
    feature = tfe.Feature.DESCRIPTOR
    assert tfe.Example.DESCRIPTOR.full_name == "tensorflow.Example"
    assert [f.name for f in feature.oneofs_by_name["kind"].fields] == [
        "bytes_list", "float_list", "int64_list"]
    assert [feature.fields_by_name[n].number for n in ("bytes_list", "float_list", "int64_list")] == [1, 2, 3]
    entry = tfe.Features.DESCRIPTOR.fields_by_name["feature"].message_type
    assert entry.GetOptions().map_entry
    assert tfe.Example.DESCRIPTOR.fields_by_name["features"].number == 1


def test_int64_list_is_packed_on_the_wire():
    # field 1, wire type 2 (length-delimited), 3 one-byte varints.
    assert tfe.Int64List(value=[1, 2, 3]).SerializeToString() == b"\x0a\x03\x01\x02\x03"
    assert tfe.FloatList(value=[1.0]).SerializeToString() == b"\x0a\x04\x00\x00\x80\x3f"


def test_encode_decode_round_trip():
    feats = {"input_ids": np.arange(10, dtype=np.int32), "b": [-1, 0, 2**62], "empty": []}
    out = tfe.decode_int64_example(tfe.encode_int64_example(feats))
    assert set(out) == set(feats)
    for k, v in feats.items():
        assert out[k].dtype == np.int64
        np.testing.assert_array_equal(out[k], np.asarray(v, dtype=np.int64))


def test_encoding_is_deterministic_regardless_of_dict_order():
    a = tfe.encode_int64_example({"x": [1, 2], "y": [3], "z": [4]})
    b = tfe.encode_int64_example({"z": [4], "y": [3], "x": [1, 2]})
    assert a == b


def test_decode_rejects_non_int64_feature():
    ex = tfe.Example()
    ex.features.feature["f"].float_list.value.append(1.5)
    with pytest.raises(ValueError, match="float_list"):
        tfe.decode_int64_example(ex.SerializeToString())


def test_private_pool_not_default_pool():
    # A real TensorFlow registers tensorflow.Example in the default pool;
    # ours must live elsewhere so both can be imported in one process.
    from google.protobuf import descriptor_pool

    assert tfe.Example.DESCRIPTOR.file.pool is not descriptor_pool.Default()
