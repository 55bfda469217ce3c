"""Packing a shard: no token lost or duplicated, EOT after every document, drop vs pad tails."""

from __future__ import annotations

import numpy as np
import pytest

from transforms.streams.packing import pack

EOT, PAD = 2, 0


def _docs(lengths, start=100):
    """Token arrays with distinct values, so any loss, duplicate or reordering shows."""
    out, next_value = [], start
    for n in lengths:
        out.append(np.arange(next_value, next_value + n, dtype=np.int32))
        next_value += n
    return out


def _stream(docs):
    return np.concatenate([np.append(d, EOT).astype(np.int32) for d in docs]) if docs else np.zeros(0, np.int32)


@pytest.mark.parametrize("lengths, seq_len", [
    ([5, 0, 17, 3, 40, 1], 8),
    ([1], 4),
    ([100], 7),
    ([3, 3, 3], 1),
    ([0, 0, 0], 2),
])
def test_drop_keeps_every_full_sequence_in_order(lengths, seq_len):
    docs = _docs(lengths)
    stream = _stream(docs)
    packed = pack(3, iter(docs), seq_len, EOT, PAD, "drop")
    full, tail = divmod(stream.size, seq_len)
    assert packed.index == 3
    assert packed.input_ids.dtype == np.int32 and packed.input_ids.shape == (full, seq_len)
    assert packed.input_ids.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(packed.input_ids.ravel(), stream[: full * seq_len])
    assert packed.loss_mask is None
    assert packed.documents == len(docs)
    assert packed.document_tokens == sum(lengths) + len(docs) == stream.size
    assert packed.tail_tokens == tail
    assert packed.dropped_tokens == tail
    # Nothing lost but the counted tail, nothing duplicated.
    assert packed.input_ids.size + packed.dropped_tokens == packed.document_tokens


@pytest.mark.parametrize("lengths, seq_len", [([5, 0, 17, 3, 40, 1], 10), ([1], 4), ([100], 7)])
def test_pad_keeps_everything_and_masks_the_padding(lengths, seq_len):
    docs = _docs(lengths)
    stream = _stream(docs)
    packed = pack(0, docs, seq_len, EOT, PAD, "pad")
    rows = -(-stream.size // seq_len)
    tail = stream.size % seq_len
    assert tail  # these cases have a partial last sequence
    assert packed.input_ids.shape == packed.loss_mask.shape == (rows, seq_len)
    assert packed.loss_mask.dtype == np.int8
    flat_ids, flat_mask = packed.input_ids.ravel(), packed.loss_mask.ravel()
    np.testing.assert_array_equal(flat_ids[: stream.size], stream)
    assert (flat_ids[stream.size:] == PAD).all()
    assert flat_mask[: stream.size].all() and not flat_mask[stream.size:].any()
    assert int(flat_mask.sum()) == stream.size
    assert packed.tail_tokens == tail and packed.dropped_tokens == 0


def test_exact_multiple_of_seq_len():
    docs = _docs([3, 7, 1])  # 3+1 + 7+1 + 1+1 = 14 tokens
    for tail in ("drop", "pad"):
        packed = pack(1, docs, 7, EOT, PAD, tail)
        assert packed.input_ids.shape == (2, 7)
        np.testing.assert_array_equal(packed.input_ids.ravel(), _stream(docs))
        assert packed.tail_tokens == 0 and packed.dropped_tokens == 0
        if tail == "pad":
            assert packed.loss_mask.shape == (2, 7) and packed.loss_mask.all()
        else:
            assert packed.loss_mask is None


@pytest.mark.parametrize("tail", ["drop", "pad"])
def test_empty_shard(tail):
    packed = pack(5, iter([]), 16, EOT, PAD, tail)
    assert packed.input_ids.shape == (0, 16) and packed.input_ids.dtype == np.int32
    assert packed.documents == packed.document_tokens == packed.tail_tokens == packed.dropped_tokens == 0
    if tail == "pad":
        assert packed.loss_mask.shape == (0, 16)


def test_shorter_than_one_sequence():
    docs = _docs([2])
    dropped = pack(0, docs, 16, EOT, PAD, "drop")
    assert dropped.input_ids.shape == (0, 16) and dropped.dropped_tokens == 3
    padded = pack(0, docs, 16, EOT, PAD, "pad")
    np.testing.assert_array_equal(padded.input_ids[0], [100, 101, EOT] + [PAD] * 13)
    np.testing.assert_array_equal(padded.loss_mask[0], [1, 1, 1] + [0] * 13)


def test_eot_after_every_document():
    docs = _docs([4, 0, 9, 2, 5])
    packed = pack(0, docs, 4, EOT, PAD, "pad")
    flat = packed.input_ids.ravel()[: int(packed.loss_mask.sum())]
    eot_positions = np.flatnonzero(flat == EOT)
    ends = np.cumsum([len(d) + 1 for d in docs]) - 1
    np.testing.assert_array_equal(eot_positions, ends)
    # Splitting at EOT gives the documents back.
    pieces = np.split(flat, eot_positions + 1)[:-1]
    for piece, doc in zip(pieces, docs):
        np.testing.assert_array_equal(piece[:-1], doc)


def test_tokens_from_little_endian_bytes_and_wide_ids():
    # The writer feeds np.frombuffer(..., "<i4") views; ids beyond int16 survive.
    docs = [np.frombuffer(np.array([70000, 5, 131071], dtype="<i4").tobytes(), dtype="<i4"),
            np.array([65536], dtype=np.int64)]
    packed = pack(0, docs, 3, EOT, PAD, "drop")
    np.testing.assert_array_equal(packed.input_ids, [[70000, 5, 131071], [EOT, 65536, EOT]])
    assert packed.input_ids.dtype == np.int32


def test_bad_tail_mode():
    with pytest.raises(ValueError, match="tail"):
        pack(0, [], 8, EOT, PAD, "truncate")
