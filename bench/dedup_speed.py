#!/usr/bin/env python3
"""Near-dedup speed benchmark: one run, side by side, on the same data (the CODE corpus).

1. Signature throughput: Sluice's vectorised ``shingle_hashes`` + ``MinHasher.signature``
   over every document, against datasketch's per-shingle ``MinHash.update`` loop (default SHA-1
   hashfunc, num_perm=256, seed=1) and ``MinHash.update_batch``. The datasketch loop is slow,
   so both datasketch variants and Sluice are also timed on a deterministic subset (every
   ``--subset_every``-th document by id); the "x loop" ratio is taken on that subset.
   MB/s per core = corpus MB / process CPU seconds (``time.process_time``); wall is shown too.
2. The whole dedup stage, ``bench/sluice_dedup.run`` (NearDedup on Beam's FnApiRunner), with 1
   worker (in-process) and 2 workers (``--direct_running_mode=multi_processing``), on half the
   corpus (every other document by id), the full corpus and the corpus doubled (every document a
   second time, id suffixed ``#2``, text plus one trailing line ``# copy 2``: a near duplicate,
   not an exact one: every copy pairs with its original at J = S / (S + 2) for S shingles, so
   the copy of any document of 8 shingles or more is a duplicate to remove, and the LSH, join
   and connected-components work grows with the duplicates, a harder case than fresh data).
   Each run is a fresh child process; a sampler thread reads the peak RSS (``VmHWM`` in
   ``/proc/<pid>/status``, every 0.2 s) of the child (the runner) and of every SDK worker
   process under it. CPU = the child's own CPU + its waited-for children (the workers).
   Half and full run ``--repeat`` times (median), doubled ``--repeat_double`` times.
3. The plain datasketch baseline (``bench/dedup_baseline.run``) on the full corpus, in-process.
4. datatrove's MinHash dedup (its 4 stages, default ``MinhashConfig``: 5-grams, 14 buckets x 8
   hashes, xxhash 64-bit) on the same JSONL, one process (``LocalPipelineExecutor``,
   workers=1), installed in its own venv ``<cache>/datatrove-venv`` on first use
   (``--skip_datatrove`` to leave it out). Its removed ids come from the filter stage's
   exclusion writer.

Precision / recall / F1 use ``dedup_truth.evaluate`` against the exact truth (full corpus only).

Usage:
    python bench/dedup_speed.py [--repeat 3] [--repeat_double 1] [--sig_repeat 3] [--subset_every 10]
                                [--scales half full double] [--workers 1 2] [--skip_datatrove]
                                [--skip_baseline] [--profile] [--cache bench/.cache] [--json out.json]
                                [--only signatures]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import harness  # first: it puts the repository on sys.path, and it and bench/ on PYTHONPATH
import dedup_baseline
import dedup_corpus
import dedup_truth
import sluice_dedup
from harness import TreeSampler

NUM_PERM = dedup_baseline.NUM_PERM
SEED = dedup_baseline.SEED
TARGET_SIG_MBPS_PER_CORE = 10.0
TARGET_SIG_VS_LOOP = 10.0
ISSUE_BASELINE_MBPS = 5.4  # the issue's measurement of the plain datasketch baseline here
SCALES = ("half", "full", "double", "x4", "x8")
DEFAULT_SCALES = ("half", "full", "double")
COPIES = {"double": 2, "x4": 4, "x8": 8}

# datatrove and the packages its MinHash stages import (spacy for its English word tokenizer,
# tokenizers because datatrove.pipeline.dedup imports it, xxhash for its default hash). Pinned.
DATATROVE_PACKAGES = ["datatrove==0.10.1", "spacy==3.8.18", "orjson==3.13.0", "regex==2026.11.19",
                      "xxhash==3.8.2", "tokenizers==0.23.3"]


# ----------------------------------------------------------------------------- machine and corpora


def machine_info() -> dict:
    return {**harness.machine_info(), "versions": harness.versions("apache-beam", "datasketch", "numpy")}


def scaled(docs: list[dict], scale: str) -> list[dict]:
    """half: every other document by id; full; double, x4, x8: each document with 1, 3 or 7 near
    copies (id suffixed ``#k``, a trailing line ``# copy k``)."""
    docs = sorted(docs, key=lambda d: d["id"])
    if scale == "half":
        return docs[::2]
    if scale == "full":
        return docs
    if scale in COPIES:
        copies = [dict(d, id=f"{d['id']}#{k}", text=d["text"] + f"\n# copy {k}\n")
                  for k in range(2, COPIES[scale] + 1) for d in docs]
        return sorted(docs + copies, key=lambda d: d["id"])
    raise ValueError(scale)


def load_code(cache: Path) -> list[dict]:
    return dedup_corpus.load_sorted(dedup_corpus.ensure_corpora(cache)["code"])


# ----------------------------------------------------------------------------- 1. signatures


def signature_benchmark(docs: list[dict], every: int, repeat: int) -> tuple[list[dict], dict]:
    import numpy as np
    from datasketch import MinHash

    from transforms.dedup.minhash import MinHasher, shingle_hash32, shingle_hashes, shingles

    hasher = MinHasher(NUM_PERM, SEED)
    template = MinHash(num_perm=NUM_PERM, seed=SEED)  # default hashfunc: SHA-1
    subset = docs[::every]
    texts_all = [d["text"] for d in docs]
    texts_sub = [d["text"] for d in subset]

    def sluice(texts):
        def go():
            for t in texts:
                hasher.signature(shingle_hashes(t))
        return go

    def ds_loop():
        for t in texts_sub:
            m = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=template.permutations, scheme=template.scheme)
            for s in dedup_truth.shingles(t):
                m.update(s.encode("utf-8"))

    def ds_batch():
        for t in texts_sub:
            m = MinHash(num_perm=NUM_PERM, seed=SEED, permutations=template.permutations, scheme=template.scheme)
            m.update_batch([s.encode("utf-8") for s in dedup_truth.shingles(t)])

    # Same data, same answer: Sluice's signature is datasketch's with hashfunc=shingle_hash32.
    check_docs = texts_sub[:50]
    same = all(
        np.array_equal(hasher.signature(shingle_hashes(t)),
                       _ds_sig(MinHash, t, shingles, shingle_hash32)) for t in check_docs)

    mb_all, mb_sub = dedup_corpus.corpus_mb(docs), dedup_corpus.corpus_mb(subset)
    n_sh_sub = sum(len(dedup_truth.shingles(t)) for t in texts_sub)
    rows = []
    for name, what, fn, n, mb in (
        ("sluice shingle_hashes + MinHasher", "all", sluice(texts_all), len(docs), mb_all),
        ("sluice shingle_hashes + MinHasher", "subset", sluice(texts_sub), len(subset), mb_sub),
        ("datasketch MinHash.update loop (sha1)", "subset", ds_loop, len(subset), mb_sub),
        ("datasketch MinHash.update_batch (sha1)", "subset", ds_batch, len(subset), mb_sub),
    ):
        t = harness.timed_runs(fn, repeat)
        rows.append({"method": name, "docs_set": what, "docs": n, "mb": mb, **t,
                     "mbps_core": mb / t["cpu"], "mbps_wall": mb / t["wall"]})
        print(f"  {name} [{what}]: wall {t['wall']:.2f} s, cpu {t['cpu']:.2f} s "
              f"(runs: {', '.join(f'{c:.2f}' for c in t['cpus'])} cpu s)", flush=True)
    loop = rows[2]["mbps_core"]
    for r in rows:
        r["x_loop"] = r["mbps_core"] / loop
    info = {"subset_every": every, "subset_docs": len(subset), "subset_mb": mb_sub,
            "subset_distinct_shingles": n_sh_sub, "same_signature_as_datasketch_shingle_hash32": same,
            "checked_docs": len(check_docs)}
    return rows, info


def _ds_sig(MinHash, text, shingles, hashfunc):
    m = MinHash(num_perm=NUM_PERM, seed=SEED, hashfunc=hashfunc, scheme="affine32")
    m.update_batch(shingles(text))
    return m.hashvalues.astype("uint32")


# ----------------------------------------------------------------------------- 2. the dedup stage


def stage_child(cache: Path, scale: str, workers: int, out: Path) -> None:
    """Runs in a fresh process: one sluice_dedup.run, its own figures written to ``out``."""
    docs = scaled(load_code(cache), scale)
    # Library imports are outside every method's timed region: Beam's and Sluice's are above, and
    # datasketch's (with scipy, ~1.6 s) here, as for the baseline, which runs in the parent after it.
    import datasketch  # noqa: F401
    # Writing the input file is the harness's work (the baseline gets the list in memory);
    # reading and parsing it are the pipeline's, and are timed.
    path = out.with_suffix(".input.jsonl")
    sluice_dedup.write_input(docs, str(path))
    before_kb = harness.proc_status_kb(os.getpid()).get("VmRSS", 0)
    with harness.Stopwatch() as watch:
        removed = sluice_dedup.run_file(str(path), workers=workers)
    own = resource.getrusage(resource.RUSAGE_SELF)
    out.write_text(json.dumps({
        "wall": watch.wall, "cpu": watch.cpu, "cpu_runner": watch.cpu_self, "docs": len(docs),
        "mb": dedup_corpus.corpus_mb(docs),
        "rss_before_mb": before_kb / 1024, "maxrss_mb": own.ru_maxrss / 1024,
        "removed": sorted(removed)}))


def run_stage(cache: Path, scale: str, workers: int, log_dir: Path) -> dict:
    out = log_dir / f"stage-{scale}-{workers}.json"
    log = log_dir / f"stage-{scale}-{workers}.log"
    with log.open("w") as handle:
        proc = subprocess.Popen([sys.executable, __file__, "--_stage_child", scale, str(workers), str(out),
                                 "--cache", str(cache)], stdout=handle, stderr=subprocess.STDOUT)
        with TreeSampler(proc.pid) as sampler:
            rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"sluice {scale} x{workers} failed (rc {rc}):\n" + log.read_text()[-3000:])
    r = json.loads(out.read_text())
    r["runner_peak_mb"] = sampler.peak_mb.get(proc.pid, r["maxrss_mb"])
    worker_peaks = sampler.workers()
    r["worker_peaks_mb"] = worker_peaks if workers > 1 else [r["runner_peak_mb"]]
    if workers > 1 and len(worker_peaks) != workers:
        r["note"] = f"sampled {len(worker_peaks)} SDK worker processes"
    return r


# ----------------------------------------------------------------------------- 4. datatrove

DATATROVE_DRIVER = r'''
import json, os, resource, sys, time
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                               MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

inp, work, out = sys.argv[1:4]
work = Path(work)
config = MinhashConfig()
def reader():
    return JsonlReader(inp, glob_pattern="*.jsonl", text_key="text", id_key="id")
stages = [
    ("signatures", [reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)], 1),
    ("buckets", [MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                                     config=config)], config.num_buckets),
    ("cluster", [MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove"),
                                     config=config)], 1),
    ("filter", [reader(), MinhashDedupFilter(input_folder=str(work / "remove"),
                exclusion_writer=JsonlWriter(str(work / "removed"), output_filename="${rank}.jsonl",
                                             compression=None))], 1),
]
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
times = {}
for name, pipeline, tasks in stages:
    w0, c0 = time.perf_counter(), cpu()
    LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1,
                          logging_dir=str(work / "logs" / name)).run()
    times[name] = {"wall": time.perf_counter() - w0, "cpu": cpu() - c0}
removed = []
for path in sorted((work / "removed").glob("*.jsonl")):
    removed += [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]
import datatrove, importlib.metadata as md
Path(out).write_text(json.dumps({"stages": times, "removed": removed, "version": md.version("datatrove"),
                                 "config": str(config)}))
'''


def ensure_datatrove(cache: Path) -> Path:
    """The datatrove venv's python, creating the venv on first use. Raises RuntimeError with why."""
    venv = cache / "datatrove-venv"
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import datatrove.pipeline.dedup.minhash, spacy, orjson, xxhash"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    log = cache / "datatrove-venv.log"
    print(f"  installing datatrove into {venv} (log: {log}) ...", flush=True)
    t0 = time.perf_counter()
    with log.open("w") as handle:
        steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
                 [str(py), "-m", "pip", "install", "--disable-pip-version-check", *DATATROVE_PACKAGES]]
        for cmd in steps:
            try:
                rc = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, timeout=900).returncode
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"timed out: {' '.join(cmd)}")
            if rc != 0:
                tail = "\n".join(log.read_text().splitlines()[-15:])
                raise RuntimeError(f"`{' '.join(cmd)}` failed (rc {rc}):\n{tail}")
    probe_run = subprocess.run(probe, capture_output=True, text=True)
    if probe_run.returncode != 0:
        raise RuntimeError("datatrove installed but does not import:\n" + probe_run.stderr[-2000:])
    print(f"  installed in {time.perf_counter() - t0:.0f} s", flush=True)
    return py


def run_datatrove(cache: Path, code_path: Path, log_dir: Path) -> dict:
    py = ensure_datatrove(cache)
    inp = log_dir / "datatrove-input"
    inp.mkdir()
    (inp / "code.jsonl").symlink_to(code_path.resolve())
    driver = log_dir / "datatrove_driver.py"
    driver.write_text(DATATROVE_DRIVER)
    out = log_dir / "datatrove.json"
    log = log_dir / "datatrove.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    env.pop("PYTHONPATH", None)
    with log.open("w") as handle:
        w0 = time.perf_counter()
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen([str(py), str(driver), str(inp), str(log_dir / "datatrove-work"), str(out)],
                                stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=log_dir)
        with TreeSampler(proc.pid) as sampler:
            try:
                rc = proc.wait(timeout=900)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError("datatrove did not finish in 900 s")
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        total_wall = time.perf_counter() - w0
    if rc != 0:
        raise RuntimeError(f"datatrove run failed (rc {rc}):\n" + "\n".join(log.read_text().splitlines()[-20:]))
    r = json.loads(out.read_text())
    r["wall"] = sum(s["wall"] for s in r["stages"].values())
    r["cpu"] = sum(s["cpu"] for s in r["stages"].values())
    r["process_wall"] = total_wall  # including interpreter start and imports
    r["process_cpu"] = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    r["runner_peak_mb"] = sampler.peak_mb.get(proc.pid, float("nan"))
    return r


# ----------------------------------------------------------------------------- profile


def _category(filename: str) -> Optional[str]:
    root = Path(harness.REPO)
    if "apache_beam" in filename:
        return "beam"
    if "/grpc" in filename or "google/protobuf" in filename:
        return "beam"  # Beam's control/data plane
    if "datasketch" in filename:
        return "datasketch (import, LSH parameters)"
    if str(root / "transforms" / "minhash.py") in filename or str(root / "transforms" / "polyhash.py") in filename:
        return "sluice: shingles + signatures"
    if str(root / "transforms") in filename or str(root / "schemas") in filename:
        return "sluice: other DoFns (LSH, verify, CC, decide)"
    if str(root / "bench") in filename:
        return "bench harness (JSON in/out)"
    return None  # builtins, numpy, stdlib: charged to whoever called them


def profile_breakdown(stats: pstats.Stats) -> dict:
    """Own time per category; functions of no category are charged to their callers, in proportion."""
    raw = stats.stats
    memo: dict = {}

    def shares(func, depth=0) -> dict:
        if func in memo:
            return memo[func]
        cat = _category(func[0])
        if cat is not None:
            result = {cat: 1.0}
        elif depth > 40 or func not in raw or not raw[func][4]:
            result = {"other (stdlib, numpy, interpreter)": 1.0}
        else:
            memo[func] = {"other (stdlib, numpy, interpreter)": 1.0}  # cycle guard
            callers = raw[func][4]
            total = sum(v[2] for v in callers.values()) or 1.0
            result = {}
            for caller, v in callers.items():
                for k, s in shares(caller, depth + 1).items():
                    result[k] = result.get(k, 0.0) + s * v[2] / total
        memo[func] = result
        return result

    own: dict[str, float] = {}
    for func, (_, _, tt, _, _) in raw.items():
        for k, s in shares(func).items():
            own[k] = own.get(k, 0.0) + tt * s
    return own


def run_profile(docs: list[dict]) -> dict:
    profiler = cProfile.Profile()
    w0 = time.perf_counter()
    profiler.enable()
    sluice_dedup.run(docs, workers=1)
    profiler.disable()
    wall = time.perf_counter() - w0
    stats = pstats.Stats(profiler)
    total = sum(v[2] for v in stats.stats.values())
    cats = profile_breakdown(stats)
    cum = {}
    for func, (_, nc, tt, ct, _) in stats.stats.items():
        cum[f"{Path(func[0]).name}:{func[1]}({func[2]})"] = (ct, tt, nc, func[0])
    import inspect

    from transforms.dedup import near as near_dedup

    sig_line = inspect.getsourcelines(near_dedup._SignatureFn.process)[1]

    def find(pred):
        return sum(v[0] for k, v in cum.items() if pred(k, v))

    sections = {
        "whole run (profiled wall)": wall,
        "  Beam: run_pipeline (planning + execution)": find(lambda k, v: k.startswith("fn_runner.py") and k.endswith("(run_pipeline)")),
        "    of which executing bundles": find(lambda k, v: k.startswith("fn_runner.py") and k.endswith("(run_stages)")),
        "      Sluice _SignatureFn.process (shingles + MinHash)": find(
            lambda k, v: v[3].endswith("transforms/dedup/near.py") and k == f"near_dedup.py:{sig_line}(process)"),
        "  graph construction (NearDedup.expand etc.)": find(lambda k, v: k.startswith("near_dedup.py") and k.endswith("(expand)")),
    }
    top = sorted(((v[1], v[0], v[2], k) for k, v in cum.items()), reverse=True)[:15]
    return {"wall": wall, "profiled_total": total, "categories": cats, "sections": sections,
            "top_own": [{"func": k, "own_s": tt, "cum_s": ct, "calls": nc} for tt, ct, nc, k in top]}


# ----------------------------------------------------------------------------- output


def fmt_mb(x) -> str:
    return f"{x:.0f}" if x == x else "?"


def print_signatures(args, sig_rows: list[dict], sig_info: dict) -> None:
    """The [1/4] table: printed alone with ``--only signatures``, else before the stage tables."""
    print(f"SIGNATURES: num_perm={NUM_PERM}, seed={SEED}, word 5-grams; median of {args.sig_repeat}; "
          f"subset = every {args.subset_every}th doc by id "
          f"({sig_info['subset_docs']} docs, {sig_info['subset_mb']:.2f} MB, "
          f"{sig_info['subset_distinct_shingles']} distinct doc shingles)")
    head = (f"{'method':<40} {'docs':<6} {'n':>5} {'MB':>6} {'wall s':>7} {'cpu s':>6} {'min cpu':>7} "
            f"{'MB/s/core':>9} {'MB/s wall':>9} {'x loop':>7}")
    print(head)
    print("-" * len(head))
    for r in sig_rows:
        print(f"{r['method']:<40} {r['docs_set']:<6} {r['docs']:>5} {r['mb']:>6.2f} {r['wall']:>7.2f} "
              f"{r['cpu']:>6.2f} {min(r['cpus']):>7.2f} {r['mbps_core']:>9.2f} {r['mbps_wall']:>9.2f} {r['x_loop']:>7.1f}")
    s_all, s_sub = sig_rows[0], sig_rows[1]
    print(f"targets: >= {TARGET_SIG_MBPS_PER_CORE:g} MB/s per core: {s_all['mbps_core']:.1f} "
          f"{'met' if s_all['mbps_core'] >= TARGET_SIG_MBPS_PER_CORE else 'NOT met'}; "
          f">= {TARGET_SIG_VS_LOOP:g}x datasketch's loop (same subset): {s_sub['x_loop']:.1f}x "
          f"{'met' if s_sub['x_loop'] >= TARGET_SIG_VS_LOOP else 'NOT met'}; "
          f"Sluice signatures == datasketch(hashfunc=shingle_hash32) on {sig_info['checked_docs']} docs: "
          f"{'yes' if sig_info['same_signature_as_datasketch_shingle_hash32'] else 'NO'}")


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=dedup_corpus.DEFAULT_CACHE)
    ap.add_argument("--scales", nargs="+", default=list(DEFAULT_SCALES), choices=SCALES,
                    help="corpus sizes; x4 and x8 (4 and 8 copies, up to 320 MB) show where memory levels off")
    ap.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the half and full dedup-stage configurations and of the baseline (median)")
    ap.add_argument("--repeat_double", type=int, default=1, help="runs of the doubled-corpus configurations")
    ap.add_argument("--sig_repeat", type=int, default=3, help="runs of every signature measurement (median)")
    ap.add_argument("--subset_every", type=int, default=10,
                    help="the datasketch signature loop runs on every N-th document by id")
    ap.add_argument("--skip_datatrove", "--skip-datatrove", action="store_true")
    ap.add_argument("--skip_baseline", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="also profile one in-process Sluice run on the full corpus (cProfile)")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--only", choices=["signatures"],
                    help="run only this section (signatures: [1/4], seconds instead of many minutes)")
    ap.add_argument("--_stage_child", nargs=3, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- measurements


def measure_signatures(args, docs: list[dict]) -> tuple[list[dict], dict]:
    print("\n[1/4] signature throughput", flush=True)
    return signature_benchmark(docs, args.subset_every, args.sig_repeat)


def stage_config(cache: Path, scale: str, workers: int, repeat: int, truth, tmp: Path) -> dict:
    """One (scale, workers) configuration of the stage: its runs' medians, the largest memory peaks,
    and, on the full corpus, its score."""
    runs = []
    for k in range(repeat):
        run_dir = tmp / f"{scale}-{workers}-{k}"
        run_dir.mkdir()
        r = run_stage(cache, scale, workers, run_dir)
        runs.append(r)
        print(f"  sluice x{workers} {scale}: wall {r['wall']:.1f} s, cpu {r['cpu']:.1f} s "
              f"(runner {r['cpu_runner']:.1f}), "
              f"removed {len(r['removed'])}, runner peak {r['runner_peak_mb']:.0f} MB, "
              f"worker peaks {[round(x) for x in r['worker_peaks_mb']]} MB", flush=True)
    if len({len(x["removed"]) for x in runs}) != 1:
        raise RuntimeError(f"sluice {scale} x{workers}: runs removed different counts")
    r = dict(runs[0])
    for key in ("wall", "cpu", "cpu_runner"):
        r[key] = statistics.median(x[key] for x in runs)
        r[key + "_runs"] = [x[key] for x in runs]
    # memory: the largest peak over the runs
    r["runner_peak_mb"] = max(x["runner_peak_mb"] for x in runs)
    r["worker_peaks_mb"] = max((x["worker_peaks_mb"] for x in runs), key=max)
    r["rss_before_mb"] = max(x["rss_before_mb"] for x in runs)
    r["runs"] = len(runs)
    r.update(method=f"sluice {workers} worker{'s' if workers > 1 else ''}", scale=scale,
             workers=workers, n_removed=len(r["removed"]))
    if scale == "full":
        r.update(scores(r["removed"], truth))
    del r["removed"]
    return r


def scores(removed, truth) -> dict:
    sc = dedup_truth.evaluate(removed, truth)
    return {"precision": sc.precision, "recall": sc.recall, "f1": sc.f1, "score": sc.__dict__}


def measure_stage(args, truth, tmp: Path) -> list[dict]:
    print("\n[2/4] dedup stage (sluice_dedup.run on FnApiRunner, one fresh process per run)", flush=True)
    return [stage_config(args.cache, scale, workers, args.repeat_double if scale in COPIES else args.repeat,
                         truth, tmp)
            for workers in args.workers for scale in args.scales]


def measure_baseline(docs: list[dict], truth, repeat: int) -> dict:
    print("\n[3/4] plain datasketch baseline (bench/dedup_baseline.run, in-process)", flush=True)
    runs = []
    for _ in range(repeat):
        with harness.Stopwatch() as watch:
            removed = dedup_baseline.run([dict(d) for d in docs])
        runs.append((watch.wall, watch.cpu_self))
        print(f"  wall {runs[-1][0]:.1f} s, cpu {runs[-1][1]:.1f} s, removed {len(removed)}", flush=True)
    cpu = statistics.median(c for _, c in runs)
    return {"method": "datasketch baseline", "scale": "full", "workers": 1, "docs": len(docs),
            "mb": dedup_corpus.corpus_mb(docs), "wall": statistics.median(w for w, _ in runs),
            "cpu": cpu, "cpu_runner": cpu, "runs": len(runs), "n_removed": len(removed),
            **scores(removed, truth)}


def measure_datatrove(cache: Path, code_path: Path, docs: list[dict], truth, tmp: Path) -> tuple[Optional[dict], str]:
    """(datatrove's row, or None where it could not run, and what the report says of it)."""
    print("\n[4/4] datatrove MinHash dedup (4 stages, 1 process, own venv)", flush=True)
    try:
        d = tmp / "datatrove-0"  # one run: its signature stage alone takes ~1.5 min here
        d.mkdir()
        r = run_datatrove(cache, code_path, d)
        print(f"  wall {r['wall']:.1f} s, cpu {r['cpu']:.1f} s (process incl. start: "
              f"{r['process_wall']:.1f} s wall, {r['process_cpu']:.1f} s cpu), removed "
              f"{len(r['removed'])}; stages: " + ", ".join(
                  f"{k} {v['wall']:.1f}/{v['cpu']:.1f}" for k, v in r["stages"].items()), flush=True)
        known = set(truth.ids)
        unknown = [x for x in r["removed"] if x not in known]
        if unknown:
            raise RuntimeError(f"datatrove removed ids not in the corpus, e.g. {unknown[:3]}")
        row = {"method": "datatrove (1 process)", "scale": "full", "workers": 1,
               "docs": len(docs), "mb": dedup_corpus.corpus_mb(docs), "wall": r["wall"], "cpu": r["cpu"],
               "cpu_runner": r["cpu"], "runs": 1, "n_removed": len(r["removed"]),
               **scores(r["removed"], truth),
               "runner_peak_mb": r["runner_peak_mb"],
               "worker_peaks_mb": [r["runner_peak_mb"]], "stages": r["stages"],
               "process_wall": r["process_wall"], "process_cpu": r["process_cpu"],
               "datatrove_version": r["version"], "datatrove_config": r["config"]}
        return row, f"ran: datatrove {r['version']}, {r['config']}"
    except Exception as exc:  # noqa: BLE001 - report and go on
        print(f"  datatrove could not be run here: {exc}", flush=True)
        return None, f"NOT RUN: {exc}"


# ----------------------------------------------------------------------------- report


def print_stage_table(stage_rows: list[dict]) -> None:
    print("DEDUP STAGE: code corpus; half = every other doc by id, double = each doc again with id "
          "'#2' and a trailing line '# copy 2'; wall / cpu = median of 'runs'; cpu s = runner + worker "
          "processes, runner = the pipeline's own process; MB/s/core = MB / cpu s")
    head = (f"{'method':<22} {'corpus':<6} {'runs':>4} {'docs':>5} {'MB':>6} {'removed':>7} {'wall s':>7} "
            f"{'cpu s':>6} {'runner':>6} "
            f"{'MB/s/core':>9} {'MB/s wall':>9} {'runner MB':>9} {'worker MB':>9} {'P':>6} {'R':>6} {'F1':>6}")
    print(head)
    print("-" * len(head))
    for r in stage_rows:
        worker = max(r["worker_peaks_mb"]) if r.get("worker_peaks_mb") else float("nan")
        f1 = " ".join(f"{r[k]:.4f}" if k in r else f"{'-':>6}" for k in ("precision", "recall", "f1"))
        print(f"{r['method']:<22} {r['scale']:<6} {r['runs']:>4} {r['docs']:>5} {r['mb']:>6.2f} {r['n_removed']:>7} "
              f"{r['wall']:>7.1f} {r['cpu']:>6.1f} {r['cpu_runner']:>6.1f} {r['mb'] / r['cpu']:>9.2f} {r['mb'] / r['wall']:>9.2f} "
              f"{fmt_mb(r.get('runner_peak_mb', float('nan'))):>9} {fmt_mb(worker):>9} {f1:>6}")
    print("P / R / F1 against the exact truth (full corpus only), as in dedup_quality.py; removals on the full corpus: "
          "right / grey / wrong (nearest J 0.5-0.75, <0.5, whole group) / missed of required:")
    for r in stage_rows:
        if "score" in r:
            s = r["score"]
            print(f"  {r['method']:<22} right {s['right']}, grey {s['neither']}, wrong {s['wrong']} "
                  f"({s['wrong_isolated_05_075']}, {s['wrong_isolated_below_05']}, {s['wrong_overremoved']}), "
                  f"missed {s['missed']} of {s['required']}")
    print("runner MB = peak RSS of the process running the pipeline (in-process: it is also the worker); "
          "worker MB = largest peak RSS of one SDK worker process (1 worker: the same process); "
          "both the largest over the runs. "
          "The baseline's memory is not sampled (it runs inside this process).")


def print_growth(workers_list: list[int], stage_rows: list[dict]) -> None:
    """How time and memory grow from one corpus size to the next, and the in-process RSS."""
    for workers in workers_list:
        rows = {r["scale"]: r for r in stage_rows if r.get("workers") == workers and r["method"].startswith("sluice")}
        pairs = [(a, b) for a, b in zip(SCALES, SCALES[1:]) if a in rows and b in rows]
        if pairs:
            parts = []
            for a, b in pairs:
                ra, rb = rows[a], rows[b]
                parts.append(f"{a}->{b}: MB x{rb['mb'] / ra['mb']:.2f}, wall x{rb['wall'] / ra['wall']:.2f}, "
                             f"cpu x{rb['cpu'] / ra['cpu']:.2f}, runner RSS x{rb['runner_peak_mb'] / ra['runner_peak_mb']:.2f}, "
                             f"worker RSS x{max(rb['worker_peaks_mb']) / max(ra['worker_peaks_mb']):.2f}")
            print(f"growth, {workers} worker{'s' if workers > 1 else ''}: " + "; ".join(parts))
    for r in stage_rows:
        if r["method"].startswith("sluice") and r["workers"] == 1:
            print(f"  in-process {r['scale']}: RSS {r['rss_before_mb']:.0f} MB before the run "
                  f"(imports + corpus in memory), peak {r['runner_peak_mb']:.0f} MB: +{r['runner_peak_mb'] - r['rss_before_mb']:.0f} MB for the pipeline")


def print_targets(stage_rows: list[dict], dt_status: str) -> None:
    sl = [r for r in stage_rows if r["method"] == "sluice 1 worker" and r["scale"] == "full"]
    if sl:
        v = sl[0]["mb"] / sl[0]["cpu"]
        print(f"target: Sluice's whole stage >= {ISSUE_BASELINE_MBPS} MB/s per core (the issue's baseline figure): "
              f"{v:.2f} {'met' if v >= ISSUE_BASELINE_MBPS else 'NOT met'}")
        base = [r for r in stage_rows if r["method"] == "datasketch baseline"]
        if base:
            b = base[0]["mb"] / base[0]["cpu"]
            # The machine's speed drifts by up to 1.5x over minutes here; a ratio within one run drifts less.
            print(f"  same run: Sluice 1 worker {v:.2f} MB/s per core vs the datasketch baseline {b:.2f}: "
                  f"{v / b:.2f}x the baseline's throughput")
    print(f"datatrove: {dt_status}")
    for r in stage_rows:
        if "stages" in r:
            print("  datatrove stages (wall/cpu s): " + ", ".join(
                f"{k} {v['wall']:.1f}/{v['cpu']:.1f}" for k, v in r["stages"].items())
                + f"; whole process incl. interpreter start and imports: {r['process_wall']:.1f} s wall, "
                  f"{r['process_cpu']:.1f} s cpu")


def print_profile(profile: dict) -> None:
    print()
    print(f"PROFILE: cProfile, one in-process run on the full corpus: {profile['wall']:.1f} s wall under the "
          f"profiler, {profile['profiled_total']:.1f} s of profiled own time")
    for k, v in profile["sections"].items():
        print(f"  {k:<58} {v:>6.1f} s")
    print("  own time by code (numpy, stdlib and builtins charged to their callers):")
    for k, v in sorted(profile["categories"].items(), key=lambda kv: -kv[1]):
        print(f"    {k:<50} {v:>6.1f} s {100 * v / profile['profiled_total']:>5.1f}%")
    print("  top own time:")
    for t in profile["top_own"][:12]:
        print(f"    {t['own_s']:>6.2f} s own {t['cum_s']:>6.2f} s cum {t['calls']:>8} calls  {t['func']}")


def print_report(args, result: dict, stage_rows: list[dict], profile: Optional[dict]) -> None:
    info = result["machine"]
    print()
    print(f"machine: {info['nproc']} CPUs ({info['cpu_model']}); python {info['python']}, "
          + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
          + f"; load average {result['load_start']} at start, {result['load_end']} at end; whole machine "
            f"{result['machine_busy_pct']:.0f}% busy, {result['machine_steal_pct']:.1f}% steal over the run")
    print()
    print_signatures(args, result["signatures"]["rows"], result["signatures"])
    print()
    print_stage_table(stage_rows)
    print_growth(args.workers, stage_rows)
    print_targets(stage_rows, result["datatrove_status"])
    if profile:
        print_profile(profile)


# -----------------------------------------------------------------------------


def start(args) -> tuple[dict, harness.MachineLoad]:
    """The machine and load lines printed first, and the report they open."""
    info = machine_info()
    load = harness.MachineLoad()
    print(f"machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['mem_gib']} GiB; {info['platform']}")
    print("versions: python " + info["python"] + ", " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    print(f"load average at start: {load.loadavg_before}", flush=True)
    return {"machine": info, "load_start": load.loadavg_before}, load


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args._stage_child:
        scale, workers, out = args._stage_child
        stage_child(args.cache, scale, int(workers), Path(out))
        return 0
    t_start = time.perf_counter()
    result, load = start(args)
    docs = load_code(args.cache)
    code_path = args.cache / "code.jsonl"
    truth = dedup_truth.load_or_compute("code", code_path, args.cache, docs=docs)
    print(f"corpus: code, {len(docs)} docs, {dedup_corpus.corpus_mb(docs):.2f} MB", flush=True)

    sig_rows, sig_info = measure_signatures(args, docs)
    result["signatures"] = {"rows": sig_rows, **sig_info}
    if args.only == "signatures":
        print()
        print_signatures(args, sig_rows, sig_info)
        if args.json:
            harness.write_json(args.json, result)
        return 0

    with tempfile.TemporaryDirectory(prefix="dedup_speed-") as tmp:
        stage_rows = measure_stage(args, truth, Path(tmp))
        if not args.skip_baseline:
            stage_rows.append(measure_baseline(docs, truth, args.repeat))
        dt_status = "skipped (--skip_datatrove)"
        if not args.skip_datatrove:
            row, dt_status = measure_datatrove(args.cache, code_path, docs, truth, Path(tmp))
            stage_rows += [row] if row else []
        result["datatrove_status"] = dt_status

    profile = None
    if args.profile:
        print("\n[profile] cProfile of one in-process sluice_dedup.run on the full corpus", flush=True)
        profile = result["profile"] = run_profile(docs)
    result["stage"] = stage_rows
    result["load_end"] = harness.loadavg()
    result["machine_busy_pct"], result["machine_steal_pct"] = load.busy_percent()
    print_report(args, result, stage_rows, profile)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        harness.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
