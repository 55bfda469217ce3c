"""Connected components of a graph too large for one machine, as a fixed number of Beam rounds.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014): alternate
*large-star* (every node links its larger neighbours to the smallest node of its neighbourhood)
and *small-star* (every node links itself and its smaller neighbours to the smallest of them).
Both keep connectivity and shrink labels towards each component's minimum; at the fixed point
every edge joins a node to its component's minimum. Both steps emit edges as (larger, smaller)
with no self-loop (large-star links v > u to min <= u; small-star links nodes to a strictly
smaller minimum), so small-star groups large-star's output as it comes. Each step is one
GroupByKey by node; a node's neighbours are read twice from Beam's re-iterable (first the
minimum, then the links), so a hub of a million neighbours costs no memory.

Duplicate edges are removed once, after the last round, not every round: large-star emits exactly
one edge per input edge (from its smaller end) and small-star at most one per input edge, so the
edge multiset never grows, and duplicates change neither a minimum nor the fixed point. A round
is then two shuffles instead of three, which halves the rounds' fixed cost on small inputs.

Most components of a near-duplicate graph are already stars when they arrive (LSH buckets link
every member to the bucket's smallest member): a minimum whose every neighbour is larger and has no
other neighbour. Such a component is final as it stands, so a pre-pass of two shuffles finds them
(each node learns whether it is such a leaf, then each edge is judged at its smaller end) and only
the other components' edges enter the rounds. Without it an idle round still shuffles every edge
twice, for every round of the bound.

Beam graphs are static, so the loop is unrolled for ``rounds`` rounds. Every round counts the
edges it rewired (``sluice.<stage>`` counters ``cc_round_NN_rewired``); a round that rewires
nothing proves the fixed point. The caller checks the last round's counter and refuses to
publish a result that had not converged (see ``convergence``).
"""

from __future__ import annotations

import apache_beam as beam

from transforms.stats.counting import count


def _both_directions(edge):
    u, v = edge
    yield u, v
    yield v, u


class _LargeStarFn(beam.DoFn):
    def __init__(self, stage, round_index):
        self._stage = stage
        self._counter = f"cc_round_{round_index:02d}_rewired"

    def process(self, item):
        u, neighbours = item
        smallest = min(min(neighbours), u)
        rewired = 0
        for v in neighbours:
            if v > u:
                if smallest != u:
                    rewired += 1
                yield v, smallest
        if rewired:
            count(self._stage, self._counter, rewired)


def _larger_first(edge):
    u, v = edge
    return (u, v) if u > v else (v, u)


class _SmallStarFn(beam.DoFn):
    """Small-star; ``both_directions`` emits each edge both ways, ready for the next round's
    large-star (one ParDo fewer a round than a separate step)."""

    def __init__(self, stage, round_index, both_directions):
        self._stage = stage
        self._counter = f"cc_round_{round_index:02d}_rewired"
        self._both = both_directions

    def process(self, item):
        u, smaller = item
        smallest = min(smaller)
        rewired = 0
        for v in smaller:
            if v != smallest:
                rewired += 1
                yield v, smallest
                if self._both:
                    yield smallest, v
        yield u, smallest
        if self._both:
            yield smallest, u
        if rewired:
            count(self._stage, self._counter, rewired)


def _drop_self_loops(edge):
    return edge[0] != edge[1]


_HAS_SMALLER = None  # a node's marker to itself: it has a smaller neighbour, so it is no star's centre
_ROUNDS = "rounds"  # JudgeStars' output of the edges that go through the rounds


class _LeafStatusFn(beam.DoFn):
    """A node and all its neighbours -> to each smaller neighbour ``(neighbour, (node, is_leaf))``.

    A leaf has exactly one distinct neighbour, smaller than itself. The neighbours are read twice
    from Beam's re-iterable and never held: a hub costs no memory."""

    def process(self, item):
        node, neighbours = item
        only = None
        leaf = True
        for other in neighbours:
            if only is None:
                only = other
            elif other != only:
                leaf = False
                break
        leaf = leaf and only is not None and only < node
        if leaf:
            yield only, (node, True)
            return
        has_smaller = False
        for other in neighbours:
            if other < node:
                has_smaller = True
                yield other, (node, False)
        if has_smaller:
            yield node, _HAS_SMALLER


class _JudgeStarFn(beam.DoFn):
    """A node and its larger neighbours' leaf flags: a star already final, or edges for the rounds
    (emitted both ways, ready for the first large-star, as small-star does for the next round).

    The component is a finished star exactly when the node has no smaller neighbour and every
    larger neighbour is a leaf: its members then have no other edge, so nothing can join it."""

    def __init__(self, stage):
        self._stage = stage

    def process(self, item):
        node, values = item
        star = all(value is not _HAS_SMALLER and value[1] for value in values)
        edges = 0
        for value in values:
            if value is _HAS_SMALLER:
                continue
            edges += 1
            if star:
                yield value[0], node
            else:
                yield beam.pvalue.TaggedOutput(_ROUNDS, (value[0], node))
                yield beam.pvalue.TaggedOutput(_ROUNDS, (node, value[0]))
        if edges:
            count(self._stage, "cc_star_edges" if star else "cc_round_edges", edges)


class ConnectedComponents(beam.PTransform):
    """Edges ``(u, v)`` of comparable labels -> ``(node, component minimum)`` for every non-minimum.

    Singleton nodes have no edge and do not appear. Labels must be deterministic-coded (str,
    bytes, ints, tuples of them), since they are grouping keys.
    """

    def __init__(self, rounds: int, stage: str):
        super().__init__()
        self._rounds = rounds
        self._stage = stage

    def expand(self, edges):
        judged = (edges
                  | "DropSelfLoops" >> beam.Filter(_drop_self_loops)
                  | "BothDirections" >> beam.FlatMap(_both_directions)
                  | "NeighboursGroup" >> beam.GroupByKey()
                  | "LeafStatus" >> beam.ParDo(_LeafStatusFn())
                  | "StarGroup" >> beam.GroupByKey()
                  | "JudgeStars" >> beam.ParDo(_JudgeStarFn(self._stage)).with_outputs(_ROUNDS, main="stars"))
        current = judged[_ROUNDS]
        for i in range(self._rounds):
            last = i == self._rounds - 1
            current = (
                current
                | f"LargeStar{i}Group" >> beam.GroupByKey()
                | f"LargeStar{i}" >> beam.ParDo(_LargeStarFn(self._stage, i))
                | f"SmallStar{i}Group" >> beam.GroupByKey()
                | f"SmallStar{i}" >> beam.ParDo(_SmallStarFn(self._stage, i, both_directions=not last))
            )
        merged = current | "Distinct" >> beam.Distinct() | "ToNodeAndMinimum" >> beam.Map(_larger_first)
        return (judged["stars"], merged) | "StarsAndMerged" >> beam.Flatten()


def convergence(counts: dict, rounds: int) -> dict:
    """From a stage's counters: the rounds that rewired edges, and whether the last one was idle."""
    rewired = [counts.get(f"cc_round_{i:02d}_rewired", 0) for i in range(rounds)]
    idle = [i for i, n in enumerate(rewired) if n == 0]
    return {
        "rounds": rounds,
        "rewired_per_round": rewired,
        "converged": bool(idle),
        "first_idle_round": idle[0] if idle else None,
    }
