#!/usr/bin/env python3
"""Plain single-process datasketch near-dedup: the reference method of the benchmark.

For every document: ``MinHash(num_perm=256, seed=1)`` (datasketch 2.0 default scheme,
permutations drawn once and shared), ``update_batch`` with the UTF-8
bytes of its shingles (the same word 5-grams as the truth, ``dedup_truth.shingles``),
inserted into ``MinHashLSH(threshold=0.8, num_perm=256)``. Every document is then
queried; each LSH candidate pair is merged with union-find *without verification*
(no estimated or exact Jaccard check); in every component the smallest id is kept and
the others are removed.

Usage:
    python bench/dedup_baseline.py [--corpus code prose] [--cache bench/.cache]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional

from datasketch import MinHash, MinHashLSH

import dedup_corpus
from dedup_truth import shingles

NUM_PERM = 256
SEED = 1
THRESHOLD = 0.8


def run(docs: list[dict], threshold: float = THRESHOLD, num_perm: int = NUM_PERM,
        seed: int = SEED) -> set[str]:
    """Return the ids removed as near duplicates."""
    ids = sorted(d["id"] for d in docs)
    rank = {x: k for k, x in enumerate(ids)}
    if len(rank) != len(ids):
        raise ValueError("document ids are not unique")
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    # The permutations depend only on (num_perm, seed, scheme): draw them once and hand them
    # to every MinHash (identical signatures to MinHash(num_perm, seed) per document,
    # without redrawing 2 x 256 random numbers per document).
    template = MinHash(num_perm=num_perm, seed=seed)
    sigs: list[tuple[str, MinHash]] = []
    for d in docs:
        m = MinHash(num_perm=num_perm, seed=seed, permutations=template.permutations,
                    scheme=template.scheme)
        m.update_batch([s.encode("utf-8") for s in shingles(d["text"])])
        lsh.insert(d["id"], m)
        sigs.append((d["id"], m))

    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, m in sigs:
        a = find(rank[key])
        for other in lsh.query(m):
            b = find(rank[other])
            if a != b:  # the root is the smallest rank, i.e. the smallest id
                if a < b:
                    parent[b] = a
                else:
                    parent[a] = b
                    a = b
    return {ids[k] for k in range(len(ids)) if find(k) != k}


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", nargs="+", default=["code", "prose"], choices=["code", "prose"])
    ap.add_argument("--cache", type=Path, default=dedup_corpus.DEFAULT_CACHE)
    args = ap.parse_args(argv)
    paths = dedup_corpus.ensure_corpora(args.cache)
    for name in args.corpus:
        docs = dedup_corpus.load_jsonl(paths[name])
        mb = dedup_corpus.corpus_mb(docs)
        t0 = time.perf_counter()
        removed = run(docs)
        dt = time.perf_counter() - t0
        print(f"{name}: {len(docs)} docs, {mb:.2f} MB, removed {len(removed)} in {dt:.1f} s "
              f"({mb / dt:.2f} MB/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
