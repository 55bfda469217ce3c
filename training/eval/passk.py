"""pass@k with the unbiased estimator of the Codex paper, in its numerically stable form.

``1 - C(n-c, k) / C(n, k)`` overflows for large n if computed with binomials; the same value is
``1 - prod_{i=n-c+1}^{n} (1 - k / i)``, a product of numbers in [0, 1].
"""

from __future__ import annotations

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c of them correct) is correct."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n} c={c} k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(counts: list, k: int) -> float:
    """Mean pass@k over problems, ``counts`` = [(n, c), ...]."""
    return float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
