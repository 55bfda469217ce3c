#!/usr/bin/env python3
"""Near-dedup quality benchmark: precision / recall / F1 of the removed documents.

Builds (or loads) the real CODE and PROSE corpora (bench/dedup_corpus.py), computes
or loads the exact ground truth (bench/dedup_truth.py, cached per corpus hash), runs
every method of ``methods()`` on every corpus and prints one table:

    method | corpus | docs | MB | removed | precision | recall | F1 | seconds | cpu s | MB/s

Scoring: threshold 0.8 with the grey zone [0.75, 0.85): a removal explained only by
pairs in the grey zone is neither right nor wrong, and a document whose only
near-duplicates are grey is never a miss. Exact definition: ``dedup_truth.evaluate``
and bench/DEDUP.md.

Usage:
    python bench/dedup_quality.py [--corpus code prose] [--methods datasketch ...]
                                  [--cache bench/.cache] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import harness  # first: it puts the repository on sys.path
import dedup_baseline
import dedup_corpus
import sluice_dedup
import dedup_truth

Method = Callable[[list[dict]], set]  # docs ({"id", "text", ...}) -> ids removed

TARGET_F1 = {"code": 0.995, "prose": 0.99}
# Figures quoted in the issue for other tools (not measured here).
REFERENCE_F1 = {
    "datatrove": {"code": 0.992, "prose": 0.978},
    "text-dedup": {"code": 0.988, "prose": 0.962},
    "datasketch LSH + union-find": {"code": 0.997, "prose": 0.982},
}


def methods() -> dict[str, Method]:
    """name -> callable(docs) returning the set of removed ids. Every method sees the
    documents sorted by id and must keep one document of every group it merges."""
    registry: dict[str, Method] = {
        "datasketch": dedup_baseline.run,
    }
    # Sluice's Beam transform, verifying LSH candidates by signature (the default) or exactly.
    registry["sluice"] = sluice_dedup.run_signature
    registry["sluice-exact"] = sluice_dedup.run_exact
    return registry


def parse_args(argv: Optional[list[str]], available: dict) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", nargs="+", default=["code", "prose"], choices=["code", "prose"])
    ap.add_argument("--methods", nargs="+", default=list(available), metavar="NAME",
                    help=f"any of: {', '.join(available)}")
    ap.add_argument("--cache", type=Path, default=dedup_corpus.DEFAULT_CACHE)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    unknown = [m for m in args.methods if m not in available]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; registered: {list(available)}")
    return args


def measure(corpus: str, path: Path, cache: Path, names: list[str], available: dict) -> list[dict]:
    """One row per method on one corpus: removals scored against the exact truth, wall and CPU."""
    docs = dedup_corpus.load_sorted(path)
    truth = dedup_truth.load_or_compute(corpus, path, cache, docs=docs)
    s = truth.stats
    print(f"truth {corpus}: {s['docs']} docs, {s['mb']:.2f} MB; {s['candidate_pairs']} pairs share a "
          f"shingle; J>=0.8: {s['pairs_ge_0.8']} pairs, grey [0.75,0.85): {s['pairs_grey']} pairs; "
          f"removable at 0.85 / 0.8 / 0.75: {s['removable_at_0.85']} / {s['removable_at_0.8']} / "
          f"{s['removable_at_0.75']} docs", flush=True)
    rows = []
    for name in names:
        with harness.Stopwatch() as watch:  # CPU with children: Beam's worker processes
            removed = available[name]([dict(d) for d in docs])
        sc = dedup_truth.evaluate(removed, truth)
        rows.append({"method": name, "corpus": corpus, "docs": s["docs"], "mb": s["mb"],
                     "seconds": watch.wall, "cpu_seconds": watch.cpu, "precision": sc.precision,
                     "recall": sc.recall, "f1": sc.f1, **sc.__dict__})
    return rows


def print_tables(rows: list[dict]) -> None:
    head = (f"{'method':<12} {'corpus':<6} {'docs':>6} {'MB':>6} {'removed':>7} {'precision':>9} "
            f"{'recall':>7} {'F1':>7} {'seconds':>7} {'cpu s':>6} {'MB/s':>5}  target F1")
    print(head)
    print("-" * len(head))
    for r in rows:
        tgt = TARGET_F1[r["corpus"]]
        print(f"{r['method']:<12} {r['corpus']:<6} {r['docs']:>6} {r['mb']:>6.2f} {r['removed']:>7} "
              f"{r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>7.4f} {r['seconds']:>7.1f} "
              f"{r['cpu_seconds']:>6.1f} {r['mb'] / r['seconds']:>5.2f}  "
              f">={tgt} {'met' if r['f1'] >= tgt else 'NOT met'}")
    print()
    print("removals: right = certain dup (J>=0.85 component), grey = explained only via 0.75<=J<0.85 "
          "(not scored), wrong = no pair J>=0.75 (nearest 0.5-0.75 / <0.5) or whole group removed; "
          "missed = required - right")
    print(f"{'method':<12} {'corpus':<6} {'right':>6} {'grey':>5} {'wrong':>6} {'0.5-.75':>7} {'<0.5':>5} "
          f"{'group':>5} {'required':>8} {'missed':>6}")
    for r in rows:
        print(f"{r['method']:<12} {r['corpus']:<6} {r['right']:>6} {r['neither']:>5} {r['wrong']:>6} "
              f"{r['wrong_isolated_05_075']:>7} {r['wrong_isolated_below_05']:>5} "
              f"{r['wrong_overremoved']:>5} {r['required']:>8} {r['missed']:>6}")
    print()
    print("reference F1 quoted in the issue (not measured here): " + "; ".join(
        f"{k} {v['code']} code / {v['prose']} prose" for k, v in REFERENCE_F1.items()))


def main(argv: Optional[list[str]] = None) -> int:
    available = methods()
    args = parse_args(argv, available)
    t_start = time.perf_counter()
    paths = dedup_corpus.ensure_corpora(args.cache)
    rows = []
    for corpus in args.corpus:
        rows += measure(corpus, paths[corpus], args.cache, args.methods, available)
    print()
    print_tables(rows)
    print(f"total {time.perf_counter() - t_start:.1f} s")
    if args.json:
        harness.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
