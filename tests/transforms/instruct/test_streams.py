"""Packing instruction examples: whole examples, segment ids per row, loss mask exactly on targets."""

import numpy as np
import pytest

from transforms.instruct.streams import pack_examples

EOT, PAD = 2, 0


def item(i, inputs, targets):
    as_bytes = lambda xs: np.array(xs, dtype="<i4").tobytes()  # noqa: E731
    return (i, f"ex{i}", (as_bytes(inputs), as_bytes(targets)))


def test_packing_keeps_segments_and_masks_exactly_the_targets():
    rng = np.random.default_rng(3)
    examples = []
    for i in range(40):
        inputs = rng.integers(10, 1000, size=rng.integers(1, 9)).tolist()
        targets = rng.integers(10, 1000, size=rng.integers(1, 5)).tolist()
        examples.append((inputs, targets))
    packed = pack_examples(4, [item(i, a, b) for i, (a, b) in enumerate(examples)], 16, EOT, PAD)
    ids, mask, segments = packed.input_ids, packed.loss_mask, packed.segment_ids
    assert ids.shape == mask.shape == segments.shape and ids.shape[1] == 16
    assert packed.documents == 40 and packed.tail_tokens == 0 and packed.dropped_tokens == 0
    recovered = []
    for row in range(ids.shape[0]):
        seg = segments[row]
        used = int((seg > 0).sum())
        assert (seg[:used] > 0).all() and (seg[used:] == 0).all()  # padding only at the end
        assert (ids[row, used:] == PAD).all() and (mask[row, used:] == 0).all()
        assert list(dict.fromkeys(seg[:used].tolist())) == list(range(1, seg.max() + 1))  # 1, 2, 3...
        for s in range(1, seg.max() + 1):
            where = np.flatnonzero(seg == s)
            assert (np.diff(where) == 1).all()  # contiguous
            tokens, target_mask = ids[row, where], mask[row, where]
            assert tokens[-1] == EOT and target_mask[-1] == 1
            first_target = int(np.argmax(target_mask))
            assert (target_mask[first_target:] == 1).all() and (target_mask[:first_target] == 0).all()
            recovered.append((tokens[:first_target].tolist(), tokens[first_target:-1].tolist()))
    assert recovered == examples  # order kept, nothing lost, nothing split across rows
    assert packed.document_tokens == sum(len(a) + len(b) + 1 for a, b in examples)


def test_an_example_that_fills_a_row_exactly_and_one_too_long():
    packed = pack_examples(0, [item(0, [5] * 5, [6] * 2), item(1, [7], [8])], 8, EOT, PAD)
    assert packed.segment_ids.tolist() == [[1] * 8, [1, 1, 1, 0, 0, 0, 0, 0]]
    assert packed.loss_mask.tolist() == [[0] * 5 + [1] * 3, [0, 1, 1, 0, 0, 0, 0, 0]]
    with pytest.raises(ValueError, match="over seq_len"):
        pack_examples(0, [item(0, [5] * 8, [6])], 8, EOT, PAD)


def test_an_empty_shard_has_no_rows():
    packed = pack_examples(1, [], 8, EOT, PAD)
    assert packed.input_ids.shape == packed.segment_ids.shape == (0, 8) and packed.documents == 0
