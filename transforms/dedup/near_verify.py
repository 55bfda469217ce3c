"""Verification of near-dedup's candidate edges: each member's node is joined to its centers, and
an edge is kept only when the two documents are similar enough.

By default the two signatures' Jaccard estimate must reach the threshold; with ``verify="exact"``,
the exact Jaccard of the shingle-hash sets; with ``verify="none"`` every LSH edge is kept.
Signatures reach the edges through two joins keyed by node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import apache_beam as beam
import numpy as np

from transforms.dedup.minhash import estimated_jaccard, exact_jaccard
from transforms.dedup.near_nodes import LINK, OWN, Node, own_and_linked
from transforms.stats.counting import count

if TYPE_CHECKING:
    from transforms.dedup.near import NearDedupConfig


class AttachMemberFn(beam.DoFn):
    """(member, [own node, centers...]) -> (center, member node), once per distinct center.

    A member has at most one center per band, so its set of centers is small (<= bands).
    """

    def process(self, item):
        _, values = item
        nodes, centers = own_and_linked(values)
        if not nodes:
            return
        for center in sorted(set(centers)):
            yield center, (LINK, nodes[0])


class VerifyFn(beam.DoFn):
    """A center's candidate edges, each kept only if its two signatures are similar enough.

    The group is read twice from Beam's re-iterable (first the center's own node, then the members
    one at a time), never copied into a list: a boilerplate bucket of a million members costs one
    member's memory here, not a million signatures."""

    def __init__(self, config: NearDedupConfig, stage: str):
        self._config = config
        self._stage = stage

    def process(self, item):
        center, values = item
        mine = next((value for tag, value in values if tag == OWN), None)
        if mine is None:
            return
        mine = Node(*mine)
        mode, threshold = self._config.verify, self._config.threshold
        verified = rejected = 0
        for tag, member in values:
            if tag != LINK:
                continue
            member = Node(*member)
            if mode == "none":
                similar = True
            elif mode == "exact":
                similar = exact_jaccard(_hashes(mine.shingles), _hashes(member.shingles)) >= threshold
            else:
                similar = estimated_jaccard(_hashes(mine.signature), _hashes(member.signature)) >= threshold
            if similar:
                verified += 1
                yield center, member.label
            else:
                rejected += 1
        if verified:
            count(self._stage, "verified_edges", verified)
        if rejected:
            count(self._stage, "rejected_candidate_edges", rejected)


def _hashes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint32)
