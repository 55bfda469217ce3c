"""MinHash near-dedup on Beam: LSH banding, verified star edges, distributed connected components.

1. Every document gets a MinHash signature of its word shingles (``transforms.dedup.minhash``).
2. LSH (``transforms.dedup.lsh``): documents sharing a band key form a bucket, which links every
   member to its smallest member (star edges: linear in the bucket's size).
3. Verification (``transforms.dedup.near_verify``): a candidate edge is kept only when the two
   documents are similar enough (by default, their signatures' Jaccard estimate).
4. Connected components over the verified edges (``transforms.dedup.connected_components``).
5. Each component keeps its smallest label. A label encodes ``(source priority, -stars, id)`` as
   bytes that sort the same way (Beam codes bytes far faster than tuples or objects), so the
   kept document is the one of the highest-priority source, then most stars, then smallest id;
   every other member is a reject ``near_duplicate`` naming the kept id. Documents of protected
   sources are never removed: they only cause removals in the others (cross-source dedup).
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np

from transforms.dedup.connected_components import ConnectedComponents
from transforms.dedup.lsh import BandKeysFn, BucketStarFn
from transforms.dedup.minhash import (
    DEFAULT_NGRAM, DEFAULT_NUM_PERM, DEFAULT_SEED, MinHasher, lsh_params, shingle_hashes,
)
from transforms.dedup.near_nodes import LINK, OWN, Node, own_and_linked
from transforms.dedup.near_verify import AttachMemberFn, VerifyFn
from transforms.stats import histograms
from transforms.stats.counting import KEPT, REJECTS, count, reject

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
        yield label, (OWN, tuple(Node(
            label=label,
            signature=self._hasher.signature(hashes).tobytes(),
            shingles=np.unique(hashes).tobytes() if exact else None,
            language=doc.language,
        )))


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
        docs, minimums = own_and_linked(values)
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
            pcoll | f"Label{name}" >> beam.Map(lambda doc, p=priority: (label_of(doc, p), (OWN, doc)))
            for priority, (name, pcoll) in enumerate(sources.items())
        ]
        docs = keyed | "AllDocuments" >> beam.Flatten()
        nodes = docs | "Signatures" >> beam.ParDo(_SignatureFn(self._config))
        centers = (
            nodes
            | "BandKeys" >> beam.ParDo(BandKeysFn(self._config))
            | "Buckets" >> beam.GroupByKey()
            | "StarEdges" >> beam.ParDo(BucketStarFn(STAGE))
        )
        members = (
            (nodes, centers)
            | "MemberAndCenters" >> beam.Flatten()
            | "JoinMember" >> beam.GroupByKey()
            | "AttachMember" >> beam.ParDo(AttachMemberFn())
        )
        verified = (
            (nodes, members)
            | "CenterAndMembers" >> beam.Flatten()
            | "JoinCenter" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(VerifyFn(self._config, STAGE))
        )
        minimums = verified | "Components" >> ConnectedComponents(self._config.cc_rounds, STAGE)
        (minimums
         | "Roots" >> beam.Map(lambda pair: (pair[1], 1))
         | "ComponentSizes" >> beam.CombinePerKey(sum)
         | "CountComponents" >> beam.Map(_count_component))
        decided = (
            (docs, minimums | "TagMinimums" >> beam.Map(lambda pair: (pair[0], (LINK, pair[1]))))
            | "DocAndMinimum" >> beam.Flatten()
            | "JoinDecision" >> beam.GroupByKey()
            | "Decide" >> beam.ParDo(_DecideFn(names, self._protected)).with_outputs(REJECTS, *names)
        )
        kept = {name: decided[name] for name in names}
        return (kept["documents"] if single else kept), decided[REJECTS]
