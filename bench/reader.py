#!/usr/bin/env python
"""Benchmark of the training reader (training.data.PackedDataset) on this machine.

    python bench/reader.py [--data VERSION_DIR] [--format arrow|tfrecord|both] [--workers 0,1,2]
                           [--batch_size 8] [--rows 4096] [--seq_len 2048] [--shards 8] [--repeat 3]
                           [--json PATH]

Reports tokens/s read into ready batches (``input_ids`` tensors), in one process (no DataLoader
workers) and with DataLoader workers, median of ``--repeat`` passes over one epoch: overall, the
time to the first batch, and the steady rate after it. Without ``--data`` it publishes a synthetic version (random token ids, ``--rows`` sequences
of ``--seq_len`` in ``--shards`` shards, both formats) in a temporary folder with
``schemas.version_writer.write_version``, so the figures do not depend on a demo's small size.
The sha256 check of each shard runs once per process (first open), inside the timing, as in
training.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import harness  # first: it puts the repository on sys.path
from schemas import dataset_version as dv  # noqa: E402
from training import data  # noqa: E402


def synthetic(folder: str, rows: int, seq_len: int, shards: int) -> None:
    """``rows`` sequences spread evenly over ``shards`` shards."""
    harness.write_synthetic_version(
        folder, [rows // shards + (1 if i < rows % shards else 0) for i in range(shards)], seq_len)


def one_pass(folder: str, fmt: str, batch_size: int, workers: int) -> dict:
    """One epoch: overall tokens/s, time to the first batch (worker start, first checksums and
    reads) and the steady rate after it, which is what a long training run sees."""
    data._VERIFIED.clear()  # each pass pays the checksum, as a fresh training process would
    ds = data.PackedDataset(folder, batch_size, fmt=fmt, seed=0)
    start = time.perf_counter()
    first, tokens, first_tokens = None, 0, 0
    for batch in data.loader(ds, num_workers=workers):
        tokens += int(batch["input_ids"].numel())
        if first is None:
            first, first_tokens = time.perf_counter(), tokens
    end = time.perf_counter()
    return {"tokens_per_s": tokens / (end - start), "first_batch_s": first - start,
            "steady_tokens_per_s": (tokens - first_tokens) / (end - first)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data")
    parser.add_argument("--format", default="both", choices=("arrow", "tfrecord", "both"))
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--seq_len", type=int, default=2048)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    formats = ("arrow", "tfrecord") if args.format == "both" else (args.format,)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or os.path.join(tmp, "version")
        if not args.data:
            synthetic(folder, args.rows, args.seq_len, args.shards)
        manifest = dv.read_manifest(folder)
        machine = harness.machine_info()
        report = {"machine": {"cpus": machine["cpu_count"], "python": machine["python"]},
                  "data": folder if args.data else "synthetic", "sequences": manifest["totals"]["records"],
                  "tokens": manifest["totals"]["tokens"], "batch_size": args.batch_size, "results": []}
        for fmt in formats:
            for workers in (int(w) for w in args.workers.split(",")):
                one_pass(folder, fmt, args.batch_size, workers)  # warm the page cache and imports
                runs = [one_pass(folder, fmt, args.batch_size, workers) for _ in range(args.repeat)]
                row = {"format": fmt, "workers": workers, "runs": runs}
                for key in ("tokens_per_s", "first_batch_s", "steady_tokens_per_s"):
                    row[key] = harness.median([r[key] for r in runs])
                report["results"].append(row)
                print(f"{fmt:9s} workers={workers}  {row['tokens_per_s'] / 1e6:7.2f} M tokens/s overall  "
                      f"{row['steady_tokens_per_s'] / 1e6:7.2f} M tokens/s after the first batch  "
                      f"first batch {row['first_batch_s']:.3f} s  (median of {len(runs)})", flush=True)
    if args.json:
        harness.write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
