"""What near-dedup's joins carry: a document's node and the tags of joined values.

Shared by the steps of ``transforms.dedup.near``, ``lsh`` and ``near_verify``: each join is a Flatten
and a GroupByKey of ``(label, (tag, value))`` pairs that the steps emit already tagged.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

# Tags of joined values: a key's own record (its document or node), or a record linked to it.
OWN, LINK = 0, 1


class Node(NamedTuple):
    """A document as near-dedup sees it; a tuple of bytes and str, so Beam codes it cheaply."""

    label: bytes
    signature: bytes  # uint32[num_perm]
    shingles: Optional[bytes]  # unique uint32 shingle hashes, only for verify="exact"
    language: str


def own_and_linked(values):
    """A joined group's own values (tag OWN: one, unless ids repeat) and its linked values."""
    own, linked = [], []
    for tag, value in values:
        (own if tag == OWN else linked).append(value)
    return own, linked
