"""MinHash near-dedup on Beam: LSH banding, verified star edges, distributed connected components.

1. Every document gets a MinHash signature of its word shingles (``transforms.dedup.minhash``).
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
4. Connected components over the verified edges (``transforms.dedup.connected_components``).
5. Each component keeps its smallest label. A label encodes ``(source priority, -stars, id)`` as
   bytes that sort the same way (Beam codes bytes far faster than tuples or objects), so the
   kept document is the one of the highest-priority source, then most stars, then smallest id;
   every other member is a reject ``near_duplicate`` naming the kept id. Documents of protected
   sources are never removed: they only cause removals in the others (cross-source dedup).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import NamedTuple, Optional

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms.dedup.connected_components import ConnectedComponents
from transforms.stats.counting import KEPT, REJECTS, count, reject
from transforms.stats import histograms
from transforms.dedup.polyhash import splitmix64
from transforms.dedup.minhash import (
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


# Tags of joined values: a key's own record (its document or node), or a record linked to it.
_OWN, _LINK = 0, 1


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
        label, (_, doc) = keyed
        hashes = shingle_hashes(doc.text, self._config.ngram)
        exact = self._config.verify == "exact"
        yield label, (_OWN, tuple(_Node(
            label=label,
            signature=self._hasher.signature(hashes).tobytes(),
            shingles=np.unique(hashes).tobytes() if exact else None,
            language=doc.language,
        )))


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values starts in a sorted, non-empty array."""
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return np.flatnonzero(first)


class _BandKeysFn(beam.DoFn):
    """Each document's band keys, gathered per LSH shard over a bundle: ``(shard, (keys, labels))``
    with ``keys`` a uint64 array's bytes and ``labels`` the matching document labels. Keys are
    computed for up to ``_BATCH`` documents at once (numpy over a [documents, bands] array)."""

    _BATCH = 4096  # documents held before their keys go out, whatever the bundle's size

    def __init__(self, config: NearDedupConfig):
        self._bands, self._rows = config.bands_rows()
        self._per_language = config.per_language
        self._shards = np.uint64(config.lsh_shards)
        # One salt per band, so equal values in different bands are different keys.
        self._salts = splitmix64(np.arange(1, self._bands + 1, dtype=np.uint64))
        self._multipliers = splitmix64(np.arange(101, 101 + self._rows, dtype=np.uint64)) | np.uint64(1)

    def start_bundle(self):
        self._labels, self._signatures, self._scopes = [], [], []

    def process(self, keyed):
        node = _Node(*keyed[1][1])
        self._labels.append(node.label)
        self._signatures.append(node.signature)
        self._scopes.append(node.language if self._per_language else "")
        if len(self._labels) >= self._BATCH:
            yield from self._flush()

    def finish_bundle(self):
        for shard, batch in self._flush():
            yield WindowedValue((shard, batch), MIN_TIMESTAMP, [GlobalWindow()])

    def _keys(self) -> np.ndarray:
        """uint64[documents, bands]: a hash of each band's values, its band and its scope."""
        signatures = np.frombuffer(b"".join(self._signatures), dtype=np.uint32).reshape(len(self._labels), -1)
        values = signatures[:, : self._bands * self._rows].reshape(-1, self._bands, self._rows).astype(np.uint64)
        keys = splitmix64((values * self._multipliers).sum(axis=2, dtype=np.uint64) ^ self._salts)
        if any(self._scopes):
            scopes = np.array([int.from_bytes(hashlib.blake2b(scope.encode("utf-8"), digest_size=8).digest(), "big")
                               if scope else 0 for scope in self._scopes], dtype=np.uint64)
            keys = np.where(scopes[:, None] != 0, splitmix64(keys ^ scopes[:, None]), keys)
        return keys

    def _flush(self):
        if not self._labels:
            return
        labels, keys = self._labels, self._keys().ravel()
        self._labels, self._signatures, self._scopes = [], [], []
        shards = keys % self._shards
        order = np.argsort(shards, kind="stable")
        keys, shards = keys[order], shards[order]
        documents = (order // self._bands).tolist()
        starts = _run_starts(shards).tolist() + [len(order)]
        for first, end in zip(starts[:-1], starts[1:]):
            yield int(shards[first]), (keys[first:end].tobytes(), [labels[d] for d in documents[first:end]])


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
        starts = _run_starts(ordered)  # a bucket starts where the key changes
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
                    yield label, (_LINK, smallest)  # keyed by the member, for its signature
        if shared.any():
            count(STAGE, "lsh_buckets", int(shared.sum()))
            count(STAGE, "lsh_bucket_members", int(sizes[shared].sum()))


def _own_and_linked(values):
    """A joined group's own values (tag _OWN: one, unless ids repeat) and its linked values."""
    own, linked = [], []
    for tag, value in values:
        (own if tag == _OWN else linked).append(value)
    return own, linked


class _AttachMemberFn(beam.DoFn):
    """(member, [own node, centers...]) -> (center, member node), once per distinct center.

    A member has at most one center per band, so its set of centers is small (<= bands).
    """

    def process(self, item):
        _, values = item
        nodes, centers = _own_and_linked(values)
        if not nodes:
            return
        for center in sorted(set(centers)):
            yield center, (_LINK, nodes[0])


class _VerifyFn(beam.DoFn):
    """A center's candidate edges, each kept only if its two signatures are similar enough.

    The group is read twice from Beam's re-iterable (first the center's own node, then the members
    one at a time), never copied into a list: a boilerplate bucket of a million members costs one
    member's memory here, not a million signatures."""

    def __init__(self, config: NearDedupConfig):
        self._config = config

    def process(self, item):
        center, values = item
        mine = next((value for tag, value in values if tag == _OWN), None)
        if mine is None:
            return
        mine = _Node(*mine)
        mode, threshold = self._config.verify, self._config.threshold
        verified = rejected = 0
        for tag, member in values:
            if tag != _LINK:
                continue
            member = _Node(*member)
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
            count(STAGE, "verified_edges", verified)
        if rejected:
            count(STAGE, "rejected_candidate_edges", rejected)


def _hashes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint32)


class _DecideFn(beam.DoFn):
    """Joins documents with their component's minimum; emits kept docs (by source) and rejects."""

    def __init__(self, source_names, protected):
        self._source_names = source_names
        self._protected = frozenset(protected)

    def start_bundle(self):
        self._kept = 0  # counted once a bundle: a counter update per document costs more than the rest

    def finish_bundle(self):
        if self._kept:
            count(STAGE, KEPT, self._kept)

    def process(self, item):
        label, values = item
        docs, minimums = _own_and_linked(values)
        minimum = minimums[0] if minimums else None
        for doc in docs:
            source = self._source_names[priority_of(label)]
            if minimum is None:
                self._kept += 1
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
        # Joins are a Flatten and a GroupByKey of (label, (tag, value)) pairs that the steps emit
        # already tagged: Beam's CoGroupByKey would add a tagging and an untagging Map per element.
        keyed = [
            pcoll | f"Label{name}" >> beam.Map(lambda doc, p=priority: (label_of(doc, p), (_OWN, doc)))
            for priority, (name, pcoll) in enumerate(sources.items())
        ]
        docs = keyed | "AllDocuments" >> beam.Flatten()
        nodes = docs | "Signatures" >> beam.ParDo(_SignatureFn(self._config))
        centers = (
            nodes
            | "BandKeys" >> beam.ParDo(_BandKeysFn(self._config))
            | "Buckets" >> beam.GroupByKey()
            | "StarEdges" >> beam.ParDo(_BucketStarFn())
        )
        members = (
            (nodes, centers)
            | "MemberAndCenters" >> beam.Flatten()
            | "JoinMember" >> beam.GroupByKey()
            | "AttachMember" >> beam.ParDo(_AttachMemberFn())
        )
        verified = (
            (nodes, members)
            | "CenterAndMembers" >> beam.Flatten()
            | "JoinCenter" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(_VerifyFn(self._config))
        )
        minimums = verified | "Components" >> ConnectedComponents(self._config.cc_rounds, STAGE)
        (minimums
         | "Roots" >> beam.Map(lambda pair: (pair[1], 1))
         | "ComponentSizes" >> beam.CombinePerKey(sum)
         | "CountComponents" >> beam.Map(_count_component))
        decided = (
            (docs, minimums | "TagMinimums" >> beam.Map(lambda pair: (pair[0], (_LINK, pair[1]))))
            | "DocAndMinimum" >> beam.Flatten()
            | "JoinDecision" >> beam.GroupByKey()
            | "Decide" >> beam.ParDo(_DecideFn(names, self._protected)).with_outputs(REJECTS, *names)
        )
        kept = {name: decided[name] for name in names}
        return (kept["documents"] if single else kept), decided[REJECTS]
