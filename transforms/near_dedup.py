"""MinHash near-dedup on Beam: LSH banding, verified star edges, distributed connected components.

1. Every document gets a MinHash signature of its word shingles (``transforms.minhash``).
2. LSH: bands and rows come from datasketch's optimiser for the threshold, weighted towards
   recall since step 3 removes false positives. Each document has one 64-bit key per band (a hash
   of the band index, the language scope and the band's values) and a bucket is the set of
   documents sharing a key; a bucket links every member to its smallest member (star edges: linear
   in the bucket's size). Keys are spread over LSH shards (key mod shards) and travel as one batch
   per shard per bundle, so the shuffle moves a few records per bundle, not one per band (Beam's
   per-record cost was most of the stage's time); a shard's batches are sorted by key in numpy to
   find the buckets. A shard's worker holds its keys in memory, about 100 bytes each with their
   labels: documents x bands / ``lsh_shards``. The default 4,096 shards keep that near 150 MB for
   250 million documents (about 1 TB of code); raise ``--lsh_shards`` in proportion beyond. (Sizing
   the shards from a document count instead needs a side input, which on Beam's local runner
   breaks the signature stage's fusion and cost 10% of the whole stage.) Buckets carry only
   labels, never signatures.
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

import collections
import dataclasses
import hashlib
from typing import NamedTuple, Optional

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms.connected_components import ConnectedComponents
from transforms.counting import KEPT, REJECTS, count, reject
from transforms import histograms
from transforms.polyhash import splitmix64
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
    # LSH shards: a shard's worker sorts documents x bands / lsh_shards keys in memory.
    lsh_shards: int = 4096

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
        # Built here, in the launcher, and shipped with the DoFn (2 KB of permutations): workers
        # then never import datasketch (and scipy, 1.6 s a process).
        self._hasher = MinHasher(config.num_perm, config.seed)

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
    """Each document's band keys, gathered per LSH shard over a bundle: ``(shard, (keys, labels))``
    with ``keys`` a uint64 array's bytes and ``labels`` the matching document labels."""

    _FLUSH = 100_000  # keys held before the batches go out, whatever the bundle's size

    def __init__(self, config: NearDedupConfig):
        self._bands, self._rows = config.bands_rows()
        self._per_language = config.per_language
        self._shards = np.uint64(config.lsh_shards)
        # One salt per band, so equal values in different bands are different keys.
        self._salts = splitmix64(np.arange(1, self._bands + 1, dtype=np.uint64))
        self._multipliers = splitmix64(np.arange(101, 101 + self._rows, dtype=np.uint64)) | np.uint64(1)

    def start_bundle(self):
        self._batches = collections.defaultdict(lambda: ([], []))
        self._held = 0

    def process(self, node):
        node = _Node(*node)
        signature = np.frombuffer(node.signature, dtype=np.uint32)[: self._bands * self._rows]
        values = signature.reshape(self._bands, self._rows).astype(np.uint64)
        keys = splitmix64((values * self._multipliers).sum(axis=1, dtype=np.uint64) ^ self._salts)
        if self._per_language and node.language:
            keys = splitmix64(keys ^ np.uint64(int.from_bytes(
                hashlib.blake2b(node.language.encode("utf-8"), digest_size=8).digest(), "big")))
        for key, shard in zip(keys.tolist(), (keys % self._shards).tolist()):
            batch = self._batches[shard]
            batch[0].append(key)
            batch[1].append(node.label)
        self._held += self._bands
        if self._held >= self._FLUSH:
            yield from self._flush()

    def finish_bundle(self):
        for shard, batch in self._flush():
            yield WindowedValue((shard, batch), MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self):
        batches, self._batches, self._held = self._batches, collections.defaultdict(lambda: ([], [])), 0
        for shard in sorted(batches):
            keys, labels = batches[shard]
            yield shard, (np.asarray(keys, dtype=np.uint64).tobytes(), labels)


class _BucketStarFn(beam.DoFn):
    """One LSH shard: its keys sorted, and each bucket's members linked to the smallest one.

    A similar pair shares most of its bands, so the same edge comes out of up to ``bands``
    buckets: edges already sent in this bundle are not sent again (a bounded set, cleared when
    full; a repeat that gets through is merged downstream, where a member's centers are a set).
    On the code benchmark this sends a sixth of the edges."""

    _SEEN_MAX = 200_000

    def start_bundle(self):
        self._seen = set()

    def process(self, shard):
        _, batches = shard
        keys, labels = [], []
        for key_bytes, batch_labels in batches:
            keys.append(np.frombuffer(key_bytes, dtype=np.uint64))
            labels.extend(batch_labels)
        keys = np.concatenate(keys)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        first = np.empty(ordered.size, dtype=bool)  # a bucket starts where the key changes
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        sizes = np.diff(starts, append=ordered.size)
        shared = sizes > 1
        for start, size in zip(starts[shared].tolist(), sizes[shared].tolist()):
            members = [labels[i] for i in order[start:start + size].tolist()]
            smallest = min(members)
            for label in members:
                edge = (smallest, label)
                if label != smallest and edge not in self._seen:
                    if len(self._seen) >= self._SEEN_MAX:
                        self._seen.clear()
                    self._seen.add(edge)
                    yield edge
        if shared.any():
            count(STAGE, "lsh_buckets", int(shared.sum()))
            count(STAGE, "lsh_bucket_members", int(sizes[shared].sum()))


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
        if config.lsh_shards < 1:
            raise ValueError("lsh_shards must be >= 1")
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
