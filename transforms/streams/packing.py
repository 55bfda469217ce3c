"""Packing: a shard's documents, each followed by end-of-text, cut into fixed-length sequences.

Nothing is lost or duplicated: concatenating a shard's sequences gives back its documents' tokens
in shuffle order. The tail that does not fill a sequence is dropped (default) or kept padded with
a loss mask of zeros over the padding; either way it is counted.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

TAIL_MODES = ("drop", "pad")


@dataclasses.dataclass
class PackedShard:
    index: int
    input_ids: np.ndarray  # int32 [sequences, seq_len]
    loss_mask: Optional[np.ndarray]  # int8 [sequences, seq_len], only with tail mode "pad"
    documents: int
    document_tokens: int  # tokens of the documents, end-of-text tokens included
    tail_tokens: int  # tokens past the last full sequence
    dropped_tokens: int  # tail tokens dropped (0 with "pad")
    segment_ids: Optional[np.ndarray] = None  # int32 [sequences, seq_len]: examples packed a row (instruct)


def pack(index: int, token_arrays, seq_len: int, eot_id: int, pad_id: int, tail: str = "drop"
         ) -> PackedShard:
    """Pack one shard's token arrays (in order) into sequences of ``seq_len``."""
    if tail not in TAIL_MODES:
        raise ValueError(f"tail must be one of {TAIL_MODES}, not {tail!r}")
    eot = np.array([eot_id], dtype=np.int32)
    pieces = []
    for tokens in token_arrays:
        pieces.append(tokens)
        pieces.append(eot)
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    total = int(stream.size)
    full, tail_tokens = divmod(total, seq_len)
    loss_mask = None
    if tail == "drop" or tail_tokens == 0:
        input_ids = stream[: full * seq_len].reshape(full, seq_len)
        dropped = tail_tokens if tail == "drop" else 0
        if tail == "pad":
            loss_mask = np.ones_like(input_ids, dtype=np.int8)
    else:
        rows = full + 1
        input_ids = np.full(rows * seq_len, pad_id, dtype=np.int32)
        input_ids[:total] = stream
        loss_mask = np.zeros(rows * seq_len, dtype=np.int8)
        loss_mask[:total] = 1
        input_ids = input_ids.reshape(rows, seq_len)
        loss_mask = loss_mask.reshape(rows, seq_len)
        dropped = 0
    return PackedShard(
        index=index,
        input_ids=np.ascontiguousarray(input_ids, dtype=np.int32),
        loss_mask=loss_mask,
        documents=len(pieces) // 2,
        document_tokens=total,
        tail_tokens=tail_tokens,
        dropped_tokens=dropped,
    )
