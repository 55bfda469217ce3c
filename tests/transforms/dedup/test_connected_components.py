"""Distributed connected components (large-star / small-star) against a union-find reference."""

from __future__ import annotations

import random

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from transforms.dedup.connected_components import ConnectedComponents, convergence


def union_find_minimums(edges):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    return {(node, find(node)) for node in list(parent) if find(node) != node}


def run_components(edges, rounds):
    pipeline = beam.Pipeline(runner="FnApiRunner")
    result_pcoll = pipeline | beam.Create(edges) | ConnectedComponents(rounds, "cc_test")
    expected = union_find_minimums(edges)
    assert_that(result_pcoll, equal_to(sorted(expected)))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query()["counters"] if c.key.metric.namespace == "sluice.cc_test"}
    return convergence(counters, rounds)


def test_chain_and_random_graph_match_union_find():
    rng = random.Random(3)
    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(40)]  # a long path: the slow case
    shuffled = [(f"r{rng.randrange(200):03d}", f"r{rng.randrange(200):03d}") for _ in range(150)]
    report = run_components(chain + shuffled + [("x", "x")], rounds=8)
    assert report["converged"]
    assert report["rewired_per_round"][0] > 0


def test_too_few_rounds_is_reported_not_hidden():
    chain = [(i, i + 1) for i in range(64)]
    pipeline = beam.Pipeline(runner="FnApiRunner")
    _ = pipeline | beam.Create(chain) | ConnectedComponents(1, "cc_short")
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query()["counters"] if c.key.metric.namespace == "sluice.cc_short"}
    assert convergence(counters, 1)["converged"] is False


def test_finished_stars_skip_the_rounds():
    """Stars (a minimum whose larger neighbours have no other edge) are final before the rounds; a
    star touched by anything else is not, and goes through them."""
    stars = [(f"s{c}m{i:03d}", f"s{c}") for c in range(3) for i in range(1, 101)]  # 3 stars of 100
    stars += [("s0m001", "s0")]  # a repeated edge keeps its leaf a leaf
    hub = [(f"h{i:04d}", "h") for i in range(1, 301)] + [("h", "a")]  # the centre has a smaller neighbour
    shared = [("p1", "p"), ("p2", "p"), ("p2", "q"), ("q1", "q")]  # p2 joins two stars: not a leaf
    pipeline = beam.Pipeline(runner="FnApiRunner")
    edges = stars + hub + shared
    assert_that(pipeline | beam.Create(edges) | ConnectedComponents(6, "cc_stars"),
                equal_to(sorted(union_find_minimums(edges))))
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query()["counters"] if c.key.metric.namespace == "sluice.cc_stars"}
    assert counters["cc_star_edges"] == 300
    assert counters["cc_round_edges"] == len(hub) + len(shared)
    assert convergence(counters, 6)["converged"]
