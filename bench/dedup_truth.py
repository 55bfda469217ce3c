#!/usr/bin/env python3
"""Exact near-duplicate ground truth, and the precision / recall / F1 of a dedup method.

Shingles
    ``words = re.findall(r"\\w+", text.lower())``; the shingles of a document are its
    word 5-grams, each the words joined by one space; a document with fewer than 5
    words is one shingle of all its words (so an empty document is the single
    shingle ``""`` and all empty documents are exact duplicates of each other).

Truth (exact, brute force)
    Every document's shingle set is built as a Python set of strings. Each distinct
    shingle string then gets a number from a vocabulary dict (a bijection: two
    shingles share a number iff they are the same string, so nothing is hashed or
    approximated). An inverted index shingle -> sorted list of documents gives the
    candidates: for document i, the postings of all its shingles, restricted to
    documents j > i, are concatenated and counted (``np.bincount``), which yields
    |A_i & A_j| exactly for *every* j that shares at least one shingle with i; no
    posting list is skipped, however long. Jaccard = |A&B| / (|A| + |B| - |A&B|).
    All pairs with Jaccard >= 0.5 are kept (as exact integer counts) in a cache
    file keyed by the corpus' sha256.

Scoring (see ``evaluate`` and bench/DEDUP.md): threshold t = 0.8 with a grey
zone [lo, hi) = [0.75, 0.85); thresholds are compared exactly, as fractions.

Usage:
    python bench/dedup_truth.py [--corpus code prose] [--cache bench/.cache]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

import dedup_corpus

NGRAM = 5
MIN_KEEP = Fraction(1, 2)  # pairs with Jaccard >= 0.5 are written to the cache
THRESHOLD = Fraction("0.8")
GREY_LO = Fraction("0.75")
GREY_HI = Fraction("0.85")
TRUTH_VERSION = 1  # bump when the computation changes, to invalidate caches

_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = NGRAM) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[k:k + n]) for k in range(len(words) - n + 1)}


def _at_least(inter: np.ndarray, union: np.ndarray, t: Fraction) -> np.ndarray:
    """Exact inter/union >= t on integers."""
    return inter.astype(np.int64) * t.denominator >= union.astype(np.int64) * t.numerator


@dataclass
class Truth:
    ids: list[str]
    i: np.ndarray  # int32, i < j, indices into ids
    j: np.ndarray
    inter: np.ndarray  # int64 |A & B|
    union: np.ndarray  # int64 |A | B|
    stats: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    def jaccard(self) -> np.ndarray:
        return self.inter / self.union

    def mask(self, lo: Optional[Fraction] = None, hi: Optional[Fraction] = None) -> np.ndarray:
        """Pairs with lo <= J (< hi)."""
        m = np.ones(len(self.i), dtype=bool)
        if lo is not None:
            m &= _at_least(self.inter, self.union, lo)
        if hi is not None:
            m &= ~_at_least(self.inter, self.union, hi)
        return m

    def components(self, t: Fraction) -> np.ndarray:
        """Connected-component label of every document in the graph of edges J >= t."""
        m = self.mask(t)
        return _components(self.n, self.i[m], self.j[m])

    def nearest(self) -> np.ndarray:
        """Per document, the largest Jaccard to any other document (0.0 if below 0.5)."""
        best = np.zeros(self.n)
        jac = self.jaccard()
        np.maximum.at(best, self.i, jac)
        np.maximum.at(best, self.j, jac)
        return best


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            if rx < ry:
                parent[ry] = rx
            else:
                parent[rx] = ry
    return np.fromiter((find(x) for x in range(n)), dtype=np.int64, count=n)


# ----------------------------------------------------------------------------- computation


def _shingle_ids(docs: list[dict], n: int) -> tuple[list[np.ndarray], int]:
    """Per document, the sorted numbers of its shingles, and how many distinct shingles there are.
    A vocabulary dict numbers them: two shingles share a number iff they are the same string."""
    vocab: dict[str, int] = {}
    doc_tokens: list[np.ndarray] = []
    for d in docs:
        s = shingles(d["text"], n)  # exact: a Python set of strings
        arr = np.fromiter((vocab.setdefault(x, len(vocab)) for x in s), dtype=np.int64, count=len(s))
        arr.sort()
        doc_tokens.append(arr)
    return doc_tokens, len(vocab)


@dataclass
class _Index:
    """Inverted index: postings sorted by (shingle, doc); ``keys`` = shingle * N + doc, increasing."""
    doc: np.ndarray
    keys: np.ndarray
    indptr: np.ndarray
    df: np.ndarray

    @classmethod
    def build(cls, doc_tokens: list[np.ndarray], sizes: np.ndarray, V: int) -> "_Index":
        N = len(doc_tokens)
        tok = np.concatenate(doc_tokens)
        doc = np.repeat(np.arange(N, dtype=np.int64), sizes)
        order = np.lexsort((doc, tok))
        tok, doc = tok[order], doc[order]
        df = np.bincount(tok, minlength=V)
        indptr = np.zeros(V + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        return cls(doc, tok * N + doc, indptr, df)


def _pairs_of(i: int, t: np.ndarray, index: _Index, sizes: np.ndarray, N: int):
    """(candidates j > i sharing a shingle with i, |A_i & A_j|, |A_i | A_j|) for document i."""
    starts = np.searchsorted(index.keys, t * N + i, side="right")  # first posting entry with doc > i
    lens = index.indptr[t + 1] - starts
    keep = lens > 0
    if not keep.any():
        return None
    starts, lens = starts[keep], lens[keep]
    total = int(lens.sum())
    offs = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
    cnt = np.bincount(index.doc[offs] - (i + 1), minlength=N - i - 1)
    js = np.flatnonzero(cnt)
    inter = cnt[js].astype(np.int64)
    return js + i + 1, inter, sizes[i] + sizes[js + i + 1] - inter


def compute_truth(docs: list[dict], n: int = NGRAM, min_keep: Fraction = MIN_KEEP,
                  log=print) -> Truth:
    t0 = time.perf_counter()
    N = len(docs)
    doc_tokens, V = _shingle_ids(docs, n)
    sizes = np.array([len(a) for a in doc_tokens], dtype=np.int64)
    t1 = time.perf_counter()
    log(f"  shingled {N} docs: {int(sizes.sum())} (doc, shingle) entries, {V} distinct shingles "
        f"[{t1 - t0:.1f} s]")
    index = _Index.build(doc_tokens, sizes, V)
    incidences = int((index.df * (index.df - 1) // 2).sum())
    log(f"  inverted index: longest posting list {int(index.df.max())} docs; "
        f"{incidences} (pair, shared shingle) incidences to count")

    out_i, out_j, out_inter, out_union = [], [], [], []
    candidates = 0
    for i in range(N):
        found = _pairs_of(i, doc_tokens[i], index, sizes, N)
        if found is None:
            continue
        js, inter, union = found
        candidates += len(js)
        ok = _at_least(inter, union, min_keep)
        if ok.any():
            out_i.append(np.full(int(ok.sum()), i, dtype=np.int32))
            out_j.append(js[ok].astype(np.int32))
            out_inter.append(inter[ok])
            out_union.append(union[ok])
    t2 = time.perf_counter()

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    truth = Truth([d["id"] for d in docs], cat(out_i, np.int32), cat(out_j, np.int32),
                  cat(out_inter, np.int64), cat(out_union, np.int64))
    truth.stats = {
        "docs": N,
        "mb": dedup_corpus.corpus_mb(docs),
        "distinct_shingles": V,
        "doc_shingle_entries": int(sizes.sum()),
        "longest_posting": int(index.df.max()),
        "incidences": incidences,
        "candidate_pairs": candidates,  # pairs sharing >= 1 shingle, all scored exactly
        "seconds": round(t2 - t0, 1),
    }
    truth.stats.update(describe(truth))
    log(f"  {candidates} candidate pairs scored exactly, {len(truth.i)} with J >= {float(min_keep)} "
        f"[{t2 - t1:.1f} s]")
    return truth


def describe(truth: Truth) -> dict:
    def removable(t: Fraction) -> int:
        return truth.n - len(np.unique(truth.components(t)))

    return {
        "pairs_ge_0.5": int(len(truth.i)),
        "pairs_ge_0.75": int(truth.mask(GREY_LO).sum()),
        "pairs_ge_0.8": int(truth.mask(THRESHOLD).sum()),
        "pairs_ge_0.85": int(truth.mask(GREY_HI).sum()),
        "pairs_grey": int(truth.mask(GREY_LO, GREY_HI).sum()),
        "pairs_exact_1": int((truth.inter == truth.union).sum()),
        "removable_at_0.75": removable(GREY_LO),
        "removable_at_0.8": removable(THRESHOLD),
        "removable_at_0.85": removable(GREY_HI),
    }


# ----------------------------------------------------------------------------- cache


def corpus_key(path: Path, n: int = NGRAM) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(f"|n={n}|keep={MIN_KEEP}|v={TRUTH_VERSION}".encode())
    return h.hexdigest()[:16]


def load_or_compute(name: str, corpus_path: Path, cache: Path, log=print,
                    docs: Optional[list[dict]] = None) -> Truth:
    key = corpus_key(corpus_path)
    npz = cache / f"truth-{name}-{key}.npz"
    meta = npz.with_suffix(".json")
    if npz.exists() and meta.exists():
        z = np.load(npz)
        m = json.loads(meta.read_text())
        return Truth(m["ids"], z["i"], z["j"], z["inter"], z["union"], m["stats"])
    log(f"truth for {name}: computing (exact) ...")
    if docs is None:
        docs = dedup_corpus.load_jsonl(corpus_path)
    truth = compute_truth(docs, log=log)
    tmp = cache / f".tmp-{npz.name}"
    np.savez(tmp, i=truth.i, j=truth.j, inter=truth.inter, union=truth.union)
    tmp.replace(npz)
    meta.write_text(json.dumps({"ids": truth.ids, "stats": truth.stats}))
    # human-readable copy of the pairs
    with (cache / f"truth-{name}-{key}.pairs.tsv").open("w", encoding="utf-8") as f:
        f.write("jaccard\tinter\tunion\tid_a\tid_b\n")
        for a, b, x, u in zip(truth.i.tolist(), truth.j.tolist(), truth.inter.tolist(), truth.union.tolist()):
            f.write(f"{x / u:.6f}\t{x}\t{u}\t{truth.ids[a]}\t{truth.ids[b]}\n")
    return truth


# ----------------------------------------------------------------------------- scoring


@dataclass
class Score:
    removed: int
    right: int  # removals justified by certain duplicates (J >= hi)
    neither: int  # removals justified only through the grey zone (lo <= J < hi)
    wrong: int  # removals not justified even at J >= lo, or removing every copy
    wrong_isolated_05_075: int  # wrong: nearest neighbour J in [0.5, lo)
    wrong_isolated_below_05: int  # wrong: nearest neighbour J < 0.5
    wrong_overremoved: int  # wrong: a whole lo-component removed, no copy kept
    required: int  # removals needed: sum over hi-components of (size - 1)
    missed: int  # required - right

    @property
    def precision(self) -> float:
        d = self.right + self.wrong
        return self.right / d if d else 1.0

    @property
    def recall(self) -> float:
        return self.right / self.required if self.required else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(removed: Iterable[str], truth: Truth,
             lo: Fraction = GREY_LO, hi: Fraction = GREY_HI) -> Score:
    """Precision / recall of the removed documents against the exact truth.

    Let H be the graph of pairs with J >= hi (certain duplicates) and L the graph of
    pairs with J >= lo (possible duplicates; L contains H). A correct dedup keeps
    exactly one document of every component, so
      * a component C of H *requires* |C| - 1 removals;
      * a component D of L *allows* at most |D| - 1 removals.
    With R the removed set:
      right   = sum over components C of H of min(|R & C|, |C| - 1)
      allowed = sum over components D of L of min(|R & D|, |D| - 1)
      neither = allowed - right      (removals explained only by grey pairs)
      wrong   = |R| - allowed        (no pair >= lo explains it, or a whole group removed)
      missed  = required - right     (required = sum over C of |C| - 1)
    precision = right / (right + wrong); recall = right / required; F1 their harmonic mean.
    Grey removals are left out of precision; grey-only documents are not required, so
    they are never misses. With lo == hi (no grey zone) this is the plain definition:
    the truth keeps one document per component of the graph J >= t and removes the rest.
    """
    index = {x: k for k, x in enumerate(truth.ids)}
    R = np.zeros(truth.n, dtype=np.int64)
    for x in removed:
        k = index.get(x)
        if k is None:
            raise KeyError(f"removed id not in the corpus: {x!r}")
        R[k] = 1

    def capped(labels: np.ndarray) -> tuple[int, int]:
        size = np.bincount(labels, minlength=truth.n)
        hit = np.bincount(labels, weights=R, minlength=truth.n).astype(np.int64)
        has = size > 0
        return int(np.minimum(hit[has], size[has] - 1).sum()), int((size[has] - 1).sum())

    comp_hi = truth.components(hi)
    comp_lo = truth.components(lo)
    right, required = capped(comp_hi)
    allowed, _ = capped(comp_lo)
    n_removed = int(R.sum())
    wrong = n_removed - allowed

    # where the wrong removals come from: documents with no pair >= lo at all (split by
    # whether they have a pair in [0.5, lo)), and groups removed entirely (the rest)
    has_lo = np.zeros(truth.n, dtype=bool)
    has_05 = np.zeros(truth.n, dtype=bool)
    m = truth.mask(lo)
    has_lo[truth.i[m]] = has_lo[truth.j[m]] = True
    has_05[truth.i] = has_05[truth.j] = True  # the cache holds exactly the pairs J >= 0.5
    iso = (R == 1) & ~has_lo
    iso_mid = int((iso & has_05).sum())
    iso_low = int((iso & ~has_05).sum())
    return Score(removed=n_removed, right=right, neither=allowed - right, wrong=wrong,
                 wrong_isolated_05_075=iso_mid, wrong_isolated_below_05=iso_low,
                 wrong_overremoved=wrong - iso_mid - iso_low,
                 required=required, missed=required - right)


# ----------------------------------------------------------------------------- cli


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", nargs="+", default=["code", "prose"], choices=["code", "prose"])
    ap.add_argument("--cache", type=Path, default=dedup_corpus.DEFAULT_CACHE)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    paths = dedup_corpus.ensure_corpora(args.cache)
    for name in args.corpus:
        truth = load_or_compute(name, paths[name], args.cache)
        s = truth.stats
        print(f"{name}: {s['docs']} docs, {s['mb']:.2f} MB, {s['distinct_shingles']} distinct shingles, "
              f"{s['candidate_pairs']} candidate pairs (share >= 1 shingle), computed in {s['seconds']} s")
        print(f"  pairs J>=0.5 {s['pairs_ge_0.5']}  J>=0.75 {s['pairs_ge_0.75']}  J>=0.8 {s['pairs_ge_0.8']}  "
              f"J>=0.85 {s['pairs_ge_0.85']}  grey [0.75,0.85) {s['pairs_grey']}  J=1 {s['pairs_exact_1']}")
        print(f"  removable docs (all but one per component): at 0.75 {s['removable_at_0.75']}, "
              f"at 0.8 {s['removable_at_0.8']}, at 0.85 {s['removable_at_0.85']}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
