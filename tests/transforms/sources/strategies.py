"""Hypothesis strategies shared by the parsers' property tests: JSON lines as a careless upstream or
an attacker writes them (any JSON value, NaN and Infinity, huge integers, deep nesting, raw bytes)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck
from hypothesis import strategies as st

# Fast enough for CI (about a second each); no deadline or speed check on a busy machine.
SETTINGS = dict(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),
    st.sampled_from([10**30, -(10**30), 1 << 63, (1 << 63) - 1, -(1 << 63) - 1]),
    st.text(max_size=20), st.sampled_from(["", " ", "\n", "\ud800", "a\x00b", "../../etc/passwd"]),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def json_lines(records) -> st.SearchStrategy:
    """Lines (bytes) from a strategy of records: dumped as JSON, dumped and then cut or spliced with
    random bytes, a record with a value nested deeper than any bound, or random bytes."""
    dumped = records.map(lambda r: json.dumps(r).encode("utf-8", "surrogatepass"))
    return st.one_of(
        dumped,
        st.tuples(dumped, st.integers(min_value=0), st.binary(max_size=8)).map(
            lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1):]),
        st.tuples(dumped, st.integers(min_value=1, max_value=20_000)).map(
            lambda t: t[0][:-1] + b', "deep": ' + nested(t[1]) + b"}" if t[0].endswith(b"}") else t[0]),
        st.binary(max_size=64),
    )
