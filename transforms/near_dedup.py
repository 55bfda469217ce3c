"""MinHash near-dedup on Beam: LSH banding, verified star edges, distributed connected components.

1. Every document gets a MinHash signature of its word shingles (``transforms.minhash``).
2. LSH: bands and rows come from datasketch's optimiser for the threshold, weighted towards
   recall since step 3 removes false positives. Each document emits one
   ``(band, band values)`` key per band; a GroupByKey forms the buckets, and a bucket links every
   member to its smallest member (star edges: linear in the bucket's size). Buckets carry only
   labels, so the shuffle moves ~60 bytes a band, not signatures.
3. Verification (default): a candidate edge is kept only when the two signatures' Jaccard
   estimate (or, with ``verify="exact"``, the exact Jaccard of the shingle-hash sets) reaches the
   threshold. Signatures reach the edges through two joins keyed by node.
4. Connected components over the verified edges (``transforms.connected_components``).
5. Each component keeps its smallest label. A label encodes ``(source priority, -stars, id)`` as
   bytes that sort the same way (Beam codes bytes far faster than tuples or objects), so the
   kept document is the one of the highest-priority source, then most stars, then smallest id;
   every other member is a reject ``near_duplicate`` naming the kept id. Documents of protected
   sources are never removed: they only cause removals in the others (cross-source dedup).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import apache_beam as beam
import numpy as np

from transforms.connected_components import ConnectedComponents
from transforms.counting import KEPT, REJECTS, count, reject
from transforms import histograms
from transforms.minhash import (
    DEFAULT_NGRAM,
    DEFAULT_NUM_PERM,
    DEFAULT_SEED,
    MinHasher,
    estimated_jaccard,
    exact_jaccard,
    lsh_params,
    shingle_hashes,
)

STAGE = "near_dedup"
VERIFY_MODES = ("signature", "exact", "none")


@dataclasses.dataclass(frozen=True)
class NearDedupConfig:
    threshold: float = 0.8
    num_perm: int = DEFAULT_NUM_PERM
    ngram: int = DEFAULT_NGRAM
    seed: int = DEFAULT_SEED
    verify: str = "signature"
    # Weight of false negatives in datasketch's choice of bands and rows. Verification removes
    # LSH's false positives, so the default buys recall: at 0.95, 256 permutations give 25 bands
    # of 10 rows, which bucket a pair of Jaccard 0.85 together with probability 0.996 (the
    # unweighted 0.5 gives 17 x 15 and only 0.79).
    lsh_false_negative_weight: float = 0.95
    cc_rounds: int = 10
    per_language: bool = False  # only documents of the same language can be duplicates

    def bands_rows(self) -> tuple[int, int]:
        weight = self.lsh_false_negative_weight
        return lsh_params(self.threshold, self.num_perm, 1.0 - weight, weight)


_MAX_STARS = (1 << 63) - 1


def label_of(doc, priority: int) -> bytes:
    """The rank that decides which member of a component is kept: smallest wins.

    priority (1 byte), then stars descending (8 bytes big-endian), then the id's UTF-8 bytes:
    bytes order is tuple order, since UTF-8 preserves code-point order.
    """
    stars = min(max(doc.stars or 0, 0), _MAX_STARS)
    return bytes([priority]) + (_MAX_STARS - stars).to_bytes(8, "big") + doc.id.encode("utf-8")


def id_of(label: bytes) -> str:
    return label[9:].decode("utf-8")


def priority_of(label: bytes) -> int:
    return label[0]


class _Node(NamedTuple):
    """A document as near-dedup sees it; a tuple of bytes and str, so Beam codes it cheaply."""

    label: bytes
    signature: bytes  # uint32[num_perm]
    shingles: Optional[bytes]  # unique uint32 shingle hashes, only for verify="exact"
    language: str


class _SignatureFn(beam.DoFn):
    def __init__(self, config: NearDedupConfig):
        self._config = config
        self._hasher = None

    def setup(self):
        self._hasher = MinHasher(self._config.num_perm, self._config.seed)

    def process(self, keyed):
        label, doc = keyed
        hashes = shingle_hashes(doc.text, self._config.ngram)
        exact = self._config.verify == "exact"
        yield tuple(_Node(
            label=label,
            signature=self._hasher.signature(hashes).tobytes(),
            shingles=np.unique(hashes).tobytes() if exact else None,
            language=doc.language,
        ))


class _BandKeysFn(beam.DoFn):
    def __init__(self, config: NearDedupConfig):
        self._bands, self._rows = config.bands_rows()
        self._per_language = config.per_language

    def process(self, node):
        node = _Node(*node)
        signature = np.frombuffer(node.signature, dtype=np.uint32)
        scope = (node.language if self._per_language else "").encode("utf-8") + b"\0"
        for band in range(self._bands):
            values = signature[band * self._rows:(band + 1) * self._rows].tobytes()
            yield band.to_bytes(2, "big") + scope + values, node.label


class _BucketStarFn(beam.DoFn):
    """A bucket's members, each linked to the smallest one (two passes, no member list in memory)."""

    def process(self, bucket):
        _, labels = bucket
        smallest = min(labels)
        size = 0
        for label in labels:
            size += 1
            if label != smallest:
                yield smallest, label
        if size > 1:
            count(STAGE, "lsh_buckets")
            count(STAGE, "lsh_bucket_members", size)


class _AttachMemberFn(beam.DoFn):
    """(member, {node: [node], centers: [...]}) -> (center, member node), once per distinct center.

    A member has at most one center per band, so its set of centers is small (<= bands).
    """

    def process(self, item):
        _, grouped = item
        nodes = list(grouped["node"])
        if not nodes:
            return
        for center in sorted(set(grouped["centers"])):
            yield center, nodes[0]


class _VerifyFn(beam.DoFn):
    def __init__(self, config: NearDedupConfig):
        self._config = config

    def process(self, item):
        center, grouped = item
        centers = list(grouped["node"])
        if not centers:
            return
        mine = _Node(*centers[0])
        mode, threshold = self._config.verify, self._config.threshold
        for member in grouped["members"]:
            member = _Node(*member)
            if mode == "none":
                similar = True
            elif mode == "exact":
                similar = exact_jaccard(_hashes(mine.shingles), _hashes(member.shingles)) >= threshold
            else:
                similar = estimated_jaccard(_hashes(mine.signature), _hashes(member.signature)) >= threshold
            if similar:
                count(STAGE, "verified_edges")
                yield center, member.label
            else:
                count(STAGE, "rejected_candidate_edges")


def _hashes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint32)


class _DecideFn(beam.DoFn):
    """Joins documents with their component's minimum; emits kept docs (by source) and rejects."""

    def __init__(self, source_names, protected):
        self._source_names = source_names
        self._protected = frozenset(protected)

    def process(self, item):
        label, grouped = item
        minimum = next(iter(grouped["minimum"]), None)
        for doc in grouped["doc"]:
            source = self._source_names[priority_of(label)]
            if minimum is None:
                count(STAGE, KEPT)
                yield beam.pvalue.TaggedOutput(source, doc)
            elif source in self._protected:
                count(STAGE, "protected_duplicate")
                yield beam.pvalue.TaggedOutput(source, doc)
            else:
                yield reject(doc.id, STAGE, "near_duplicate", id_of(minimum))


def _count_component(root_and_size):
    """One component: counted, and its size (the root plus the members joined to it) observed."""
    count(STAGE, "components")
    histograms.observe(histograms.NEAR_DUPLICATE_CLUSTER_SIZE, root_and_size[1] + 1)
    return root_and_size


class NearDedup(beam.PTransform):
    """Near-dedup of one or several corpora at once.

    Input: a PCollection of Documents, or a dict ``{source: PCollection}`` whose insertion order
    is priority order (first = highest). Output: ``(kept, rejects)`` for a single PCollection,
    ``({source: kept}, rejects)`` for a dict. ``protected`` names sources never removed from.
    """

    def __init__(self, config: NearDedupConfig = NearDedupConfig(), protected=()):
        super().__init__()
        if config.verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}")
        self._config = config
        self._protected = tuple(protected)

    def expand(self, inputs):
        single = not isinstance(inputs, dict)
        sources = {"documents": inputs} if single else dict(inputs)
        names = tuple(sources)
        unknown = set(self._protected) - set(names)
        if unknown:
            raise ValueError(f"protected sources {sorted(unknown)} are not inputs")
        keyed = [
            pcoll | f"Label{name}" >> beam.Map(lambda doc, p=priority: (label_of(doc, p), doc))
            for priority, (name, pcoll) in enumerate(sources.items())
        ]
        docs = keyed | "AllDocuments" >> beam.Flatten()
        nodes = docs | "Signatures" >> beam.ParDo(_SignatureFn(self._config))
        candidates = (
            nodes
            | "BandKeys" >> beam.ParDo(_BandKeysFn(self._config))
            | "Buckets" >> beam.GroupByKey()
            | "StarEdges" >> beam.ParDo(_BucketStarFn())
        )
        nodes_by_label = nodes | "NodesByLabel" >> beam.Map(lambda node: (node[0], node))
        members = (
            {"node": nodes_by_label,
             "centers": candidates | "ByMember" >> beam.Map(lambda edge: (edge[1], edge[0]))}
            | "JoinMember" >> beam.CoGroupByKey()
            | "AttachMember" >> beam.ParDo(_AttachMemberFn())
        )
        verified = (
            {"node": nodes_by_label, "members": members}
            | "JoinCenter" >> beam.CoGroupByKey()
            | "Verify" >> beam.ParDo(_VerifyFn(self._config))
        )
        minimums = verified | "Components" >> ConnectedComponents(self._config.cc_rounds, STAGE)
        (minimums
         | "Roots" >> beam.Map(lambda pair: (pair[1], 1))
         | "ComponentSizes" >> beam.CombinePerKey(sum)
         | "CountComponents" >> beam.Map(_count_component))
        decided = (
            {"doc": docs, "minimum": minimums}
            | "JoinDecision" >> beam.CoGroupByKey()
            | "Decide" >> beam.ParDo(_DecideFn(names, self._protected)).with_outputs(REJECTS, *names)
        )
        kept = {name: decided[name] for name in names}
        return (kept["documents"] if single else kept), decided[REJECTS]
