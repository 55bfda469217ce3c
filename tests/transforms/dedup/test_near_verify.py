"""Verification of near-dedup's candidate edges: a huge bucket is verified one member at a time."""

from __future__ import annotations

import tracemalloc

import numpy as np

from transforms.dedup.minhash import MinHasher
from transforms.dedup.near import STAGE, NearDedupConfig
from transforms.dedup.near_verify import VerifyFn


class _Group:
    """A re-iterable GroupByKey value that makes its members as it is read, as Dataflow pages a
    large group in, instead of holding them all."""

    def __init__(self, own, members, similar_every, num_perm):
        self._own, self._members, self._every, self._num_perm = own, members, similar_every, num_perm

    def __iter__(self):
        for i in range(self._members):
            if i == self._members // 2:
                yield 0, self._own  # the center's own node, in the middle of its members
            if i % self._every == 0:
                signature = self._own[1]
            else:
                signature = np.random.default_rng(i).integers(0, 2**32, self._num_perm, dtype=np.uint32).tobytes()
            yield 1, (b"\x00member-%08d" % i, signature, None, "python")


def test_verifying_a_huge_bucket_holds_one_member_at_a_time(sample_python_files):
    config = NearDedupConfig()
    text = sample_python_files["toolz-0.12.1.tar.gz:toolz/itertoolz.py"]
    own = (b"\x00center", MinHasher(config.num_perm, config.seed).signature_of_text(text).tobytes(), None, "python")
    members = 20_000  # 20 MB of signatures if the group were copied into a list
    group = _Group(own, members, similar_every=3, num_perm=config.num_perm)
    fn = VerifyFn(config, STAGE)
    tracemalloc.start()
    try:
        kept = sum(1 for _ in fn.process((b"\x00center", group)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept == len(range(0, members, 3))
    assert peak < 2_000_000, peak
