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

Beam graphs are static, so the loop is unrolled for ``rounds`` rounds. Every round counts the
edges it rewired (``sluice.<stage>`` counters ``cc_round_NN_rewired``); a round that rewires
nothing proves the fixed point. The caller checks the last round's counter and refuses to
publish a result that had not converged (see ``convergence``).
"""

from __future__ import annotations

import apache_beam as beam

from transforms.counting import count


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
        current = (edges
                   | "DropSelfLoops" >> beam.Filter(_drop_self_loops)
                   | "BothDirections" >> beam.FlatMap(_both_directions))
        for i in range(self._rounds):
            last = i == self._rounds - 1
            current = (
                current
                | f"LargeStar{i}Group" >> beam.GroupByKey()
                | f"LargeStar{i}" >> beam.ParDo(_LargeStarFn(self._stage, i))
                | f"SmallStar{i}Group" >> beam.GroupByKey()
                | f"SmallStar{i}" >> beam.ParDo(_SmallStarFn(self._stage, i, both_directions=not last))
            )
        return current | "Distinct" >> beam.Distinct() | "ToNodeAndMinimum" >> beam.Map(_larger_first)


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
