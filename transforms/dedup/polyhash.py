"""Polynomial hashing modulo 2**64 with numpy: the hash of every substring from prefix sums.

Shared by near-dedup (shingle hashes) and decontamination (token and n-gram hashes): a text's
bytes are hashed once into prefix sums, and any span's hash then costs two lookups and a
multiply, with no Python loop. numpy's uint64 arithmetic wraps, which is the intended modulo.
"""

from __future__ import annotations

import threading

import numpy as np


class Powers:
    """base**i and base**-i mod 2**64 for i < length, grown by doubling; threads may share it."""

    def __init__(self, base: int):
        if base % 2 == 0:
            raise ValueError("the base must be odd to be invertible modulo 2**64")
        self._base = base
        self._inverse = pow(base, -1, 1 << 64)
        self._tables = (np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))
        self._lock = threading.Lock()

    def get(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(powers, inverse powers), each at least ``length`` long."""
        tables = self._tables
        if len(tables[0]) < length:
            with self._lock:
                tables = self._tables
                if len(tables[0]) < length:
                    size = max(length, 2 * len(tables[0]), 1 << 16)
                    up = np.full(size, self._base, dtype=np.uint64)
                    down = np.full(size, self._inverse, dtype=np.uint64)
                    up[0] = down[0] = 1
                    tables = (np.cumprod(up, dtype=np.uint64), np.cumprod(down, dtype=np.uint64))
                    self._tables = tables
        return tables


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: spreads every input bit over the 64 output bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
