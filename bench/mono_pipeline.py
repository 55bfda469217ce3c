#!/usr/bin/env python
"""Benchmark of the Mono pipeline end to end on this machine.

    python bench/mono_pipeline.py [--input MANIFEST.jsonl] [--scale N] [--repeat R] [--workers W]
                                  [--vocab_size 8000] [--num_shards 4] [--tokenizer MODEL]
                                  [--profile_runs K] [--sample_interval_ms 5] [--json PATH]
                                  [--workdir DIR] [--keep] [any pipelines.mono flag]

Reports input MB/s and output tokens/s of ``pipelines.mono`` (median of R runs), the share of time
per stage (a sampling profiler over one extra in-process run), and SentencePiece's raw encode speed
on exactly the curated documents of the same run, so the pipeline's overhead over its unavoidable
tokenization cost is one ratio. See bench/README.md for what each figure means.

Runs, in this order, all in this process (the FnApiRunner's default in_memory mode executes every
bundle on the calling thread):
  1. pipelines.tokenizer on the unscaled input (timed separately; not part of any throughput);
  2. one mono run with --write_documents --write_rejects (warm-up; gives the curated texts and the
     list of repositories whose archives were read; its wall time is reported separately);
  3. R timed mono runs with 1 worker, the command of the issue (no side outputs), each followed by
     one pass of SentencePiece encode alone over the curated texts (single thread), so the
     pipeline and its unavoidable tokenization cost are measured under the same conditions;
  4. K (default 1) extra 1-worker mono runs under the sampling profiler (per-stage shares);
  5. with --workers W > 1: R timed runs with --direct_running_mode=multi_processing
     --direct_num_workers=W, side by side with 1 worker;
  6. a reference outside Beam: the read stage's own work (gunzip + untar + UTF-8 check + sha256)
     over the archives the pipeline read, which also gives their uncompressed bytes.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import sys
import threading
import time

import harness  # first: it puts the repository on sys.path and PYTHONPATH
from harness import MB, REPO, EncodeReference, fmt_int, fmt_s, median

harness.quiet_logging()  # before Beam is imported
DEFAULT_INPUT = os.path.join(REPO, "samples", "mono", "manifest.jsonl")

# Which Sluice source file does the work of which stage (paths relative to the repository root).
STAGE_OF_FILE = {
    "transforms/sources/repo_list.py": "manifest",
    "transforms/filters/stars.py": "stars",
    "transforms/filters/licenses.py": "license",
    "transforms/sources/archive_reader.py": "read",
    "transforms/sources/archive_stream.py": "read",
    "transforms/filters/file_selection.py": "select",
    "transforms/filters/quality.py": "quality",
    "transforms/dedup/exact.py": "exact_dedup",
    "transforms/dedup/near.py": "near_dedup",
    "transforms/dedup/lsh.py": "near_dedup",
    "transforms/dedup/near_verify.py": "near_dedup",
    "transforms/dedup/near_nodes.py": "near_dedup",
    "transforms/dedup/minhash.py": "near_dedup",
    "transforms/dedup/connected_components.py": "near_dedup",
    "transforms/decontamination.py": "decontamination",
    "transforms/decontamination_matcher.py": "decontamination",
    "schemas/benchmarks/__init__.py": "decontamination",
    "transforms/streams/tokenize.py": "tokenize",
    "schemas/tokenizer.py": "tokenize",
    "transforms/streams/shuffle.py": "shuffle",
    "transforms/streams/shard_writer.py": "pack_write",
    "transforms/streams/packing.py": "pack_write",
    "schemas/packed_stream.py": "pack_write",
    "schemas/tfrecord.py": "pack_write",
    "schemas/tf_example.py": "pack_write",
    "transforms/stats/run_stats.py": "run_stats",
    "transforms/stats/side_outputs.py": "side_outputs",
}
# Helpers every stage calls: their frames belong to the caller's stage.
SHARED_FILES = ("transforms/stats/counting.py", "schemas/records.py", "transforms/dedup/polyhash.py")
# transforms/stats/counting.py's filter DoFn serves several stages; its ``_stage`` names which.
COUNTED_FILTER_STAGES = {"stars": "stars", "select": "select", "quality": "quality"}
STAGE_LABELS = [
    ("manifest", "read manifest"),
    ("stars", "star filter"),
    ("license", "license filter (askalono on null licenses)"),
    ("read", "read archives (gunzip, untar, UTF-8, sha256)"),
    ("select", "file selection"),
    ("quality", "code-quality filters"),
    ("exact_dedup", "exact dedup (key by sha256, keep smallest id)"),
    ("near_dedup", "near dedup (MinHash, LSH buckets, verify, components)"),
    ("decontamination", "decontamination"),
    ("tokenize", "tokenize (SentencePiece encode)"),
    ("shuffle", "global shuffle (BLAKE2b key, sort in shard)"),
    ("pack_write", "pack + write shards (TFRecord, Arrow, sha256)"),
    ("run_stats", "run stats (archive fingerprint, JSON)"),
    ("side_outputs", "side outputs (Parquet)"),
    ("beam_worker", "Beam inside bundles (coders, fused-stage plumbing, metrics)"),
    ("beam_runner", "Beam outside bundles (graph, pickling, planning, GBK buffers)"),
    ("driver", "Sluice driver (flags, output prep, manifest)"),
]
BEAM_STAGES = ("beam_worker", "beam_runner")
# Counter namespaces of the document-level stages, in pipeline order (for the "kept" funnel).
FUNNEL_STAGES = ("read", "select", "quality", "exact_dedup", "decontaminate", "near_dedup")
OPTIONAL_STAGES = ("near_dedup", "decontamination", "side_outputs")


# --------------------------------------------------------------------------------------------
# Input


def read_manifest_lines(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_input(manifest: str, scale: int, workdir: str) -> tuple[str, list[dict]]:
    """The manifest to run on: the bundled one at scale 1, else N copies of its repositories.

    Copy k (k >= 1) of ``owner/name`` is ``owner/name-copyk``; every copy points at the same
    archive file (made absolute), so copies are exact duplicates of the originals.
    """
    from transforms.sources.repo_list import resolve_archive

    records = read_manifest_lines(manifest)
    for record in records:
        archive = resolve_archive(record["archive"], manifest)
        record["archive"] = archive if "://" in archive else os.path.abspath(archive)
    if scale == 1:
        return manifest, records
    scaled = []
    for k in range(scale):
        for record in records:
            copy = dict(record)
            if k:
                copy["repo_name"] = f"{record['repo_name']}-copy{k}"
            scaled.append(copy)
    path = os.path.join(workdir, f"manifest-x{scale}.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for record in scaled:
            f.write(json.dumps(record) + "\n")
    return path, scaled


# --------------------------------------------------------------------------------------------
# Sampling profiler: which stage is the pipeline thread in, time-weighted


class StageSampler:
    """Samples one thread's Python stack every ``interval`` seconds and charges the wall time
    since the previous sample to the stage that stack is in (see ``classify``).

    Time-weighting matters: while the sampled thread holds the GIL in C code that does not release
    it, the sampler cannot run; when it next runs, the elapsed time goes to the stack it then sees,
    which is the Python frame that made the C call. (SentencePiece's encode releases the GIL, so it
    is sampled while it runs.)
    """

    def __init__(self, interval: float):
        self.interval = interval
        self.seconds = collections.Counter()
        self.samples = collections.Counter()
        self.off_thread_samples = 0  # Sluice stage frames on other threads (expected: 0)
        self.hotspots = collections.Counter()  # (stage, innermost frame) -> seconds
        self._stage_of_code = {}
        self._stop = threading.Event()
        self._thread = None
        self._target = None

    def __enter__(self):
        self._target = threading.get_ident()
        self._thread = threading.Thread(target=self._run, name="stage-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def add(self, other: "StageSampler") -> None:
        """Sum another run's figures into this one's (shares over several profiled runs)."""
        for name in ("seconds", "samples", "hotspots"):
            getattr(self, name).update(getattr(other, name))
        self.off_thread_samples += other.off_thread_samples

    def _run(self):
        me = threading.get_ident()
        last = time.perf_counter()
        while True:
            stopped = self._stop.wait(self.interval)
            now = time.perf_counter()
            frames = sys._current_frames()
            frame = frames.get(self._target)
            stage = self.classify(frame)
            self.seconds[stage] += now - last
            if frame is not None:
                code = frame.f_code
                leaf = f"{os.path.basename(code.co_filename)}:{code.co_name}"
                self.hotspots[(stage, leaf)] += now - last
            self.samples[stage] += 1
            last = now
            for ident, frame in frames.items():
                if ident not in (me, self._target) and self._sluice_stage_in(frame):
                    self.off_thread_samples += 1
            if stopped:
                return

    def _code_stage(self, frame):
        code = frame.f_code
        stage = self._stage_of_code.get(code, "?")
        if stage == "?":
            filename = code.co_filename
            stage = None
            if filename.startswith(REPO + os.sep):
                rel = filename[len(REPO) + 1:].replace(os.sep, "/")
                stage = STAGE_OF_FILE.get(rel)
                if rel == "transforms/stats/counting.py" and code.co_name == "process":
                    stage = "counted_filter"
                elif stage is None and rel.startswith(("transforms/", "schemas/")) \
                        and rel not in SHARED_FILES:
                    stage = f"other Sluice code: {rel}"  # a module this bench does not know yet
            self._stage_of_code[code] = stage
        if stage == "counted_filter":
            try:
                name = frame.f_locals["self"]._stage
                stage = COUNTED_FILTER_STAGES.get(name, f"other Sluice code: {name} filter")
            except (KeyError, AttributeError):
                stage = None
        return stage

    def _sluice_stage_in(self, frame) -> bool:
        while frame is not None:
            if self._code_stage(frame):
                return True
            frame = frame.f_back
        return False

    def classify(self, frame) -> str:
        """The stage of a stack, innermost Sluice stage frame first:

        * a Sluice stage's frame (its DoFn, its helpers, the C calls they make) with Beam's
          worker (apache_beam/runners/worker/) further out: that stage;
        * else Beam's worker anywhere on the stack: "beam_worker" (inside a bundle, between
          DoFns: coders, receivers, metrics, GroupByKey writes);
        * else any apache_beam frame: "beam_runner" (pipeline construction, DoFn pickling, fusion
          and planning, the runner's grouping buffers, job start and finish);
        * else "driver" (Sluice's own driver code: flags, output guard, manifest).
        """
        stage = None
        in_worker = in_beam = False
        while frame is not None:
            if stage is None:
                stage = self._code_stage(frame)
            filename = frame.f_code.co_filename
            if "apache_beam" in filename:
                in_beam = True
                if f"apache_beam{os.sep}runners{os.sep}worker{os.sep}" in filename:
                    in_worker = True
                    if stage is not None:
                        return stage
            frame = frame.f_back
        if in_worker:
            return "beam_worker"
        if in_beam:
            return "beam_runner"
        return "driver"


# --------------------------------------------------------------------------------------------
# Runs


def run_mono(manifest, output, tokenizer_model, num_shards, extra=()):
    """One in-process ``pipelines.mono`` run: (wall seconds, CPU seconds, manifest dict)."""
    from pipelines import mono

    argv = ["--input", manifest, "--output", output, "--tokenizer", tokenizer_model,
            "--num_shards", str(num_shards), *extra]
    shutil.rmtree(output, ignore_errors=True)  # versions are immutable: a fresh one each time
    with harness.Stopwatch() as watch:
        result = mono.main(argv)
    return watch.wall, watch.cpu, result


def output_summary(result: dict) -> dict:
    counts = result["counts"]
    return {
        **harness.shard_summary(result),
        "archives_read": result["inputs"]["archives"]["archives"],
        "compressed_bytes": result["inputs"]["archives"]["compressed_bytes"],
        "files_read": counts.get("read", {}).get("kept", 0),
        # documents kept by each document-level stage, in pipeline order (stages that ran)
        "funnel": [(stage, counts[stage]["kept"]) for stage in FUNNEL_STAGES
                   if "kept" in counts.get(stage, {})],
        "optional_stages": {key: result["config"].get(key) is not None
                            for key in ("decontamination", "near_dedup")},
        "counts": counts,
    }


# --------------------------------------------------------------------------------------------
# References outside Beam


def read_reference(repos: list[dict], skipped: set) -> dict:
    """The read stage's own work outside Beam: iter_members + decode + sha256 over every archive
    the pipeline read (the same functions ``_ReadArchiveFn`` calls). Gives the uncompressed bytes
    of the files read, and the time that work takes with no Beam around it."""
    from transforms.sources.archive_reader import decode_source
    from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, ArchiveReport, iter_members

    limits = ArchiveLimits()
    archives = files = file_bytes = compressed = 0
    started = time.perf_counter()
    for repo in repos:
        if repo["repo_name"] in skipped:
            continue
        archives += 1
        report = ArchiveReport()
        try:
            for member in iter_members(repo["archive"], limits, report):
                if member.data is None:
                    continue
                files += 1
                file_bytes += len(member.data)
                decode_source(member.data)
                hashlib.sha256(member.data).hexdigest()
        except ArchiveError:
            pass
        compressed += report.compressed_bytes
    return {"archives": archives, "files": files, "uncompressed_file_bytes": file_bytes,
            "compressed_bytes": compressed, "seconds": time.perf_counter() - started}


# --------------------------------------------------------------------------------------------
# Report


def throughput(wall: float, cpu: float, inputs: dict, out: dict, encode: dict) -> dict:
    return {
        "wall_seconds_median": wall,
        "cpu_seconds_median": cpu,
        "compressed_mb_per_s": inputs["compressed_bytes"] / MB / wall,
        "uncompressed_mb_per_s": inputs["uncompressed_file_bytes"] / MB / wall,
        "curated_mb_per_s": inputs["curated_bytes"] / MB / wall,
        "output_tokens_per_s": out["tokens"] / wall,
        "ratio_to_raw_encode": wall / encode["raw_seconds_median"],
        "cpu_ratio_to_raw_encode": cpu / encode["raw_cpu_seconds_median"],
    }


def render_header(r: dict) -> list[str]:
    """Command, machine, software, input, pipeline, load, and the one-time costs."""
    m, cfg, inp, out = r["machine"], r["config"], r["input"], r["output"]
    lines = []
    add = lines.append
    add(f"Sluice Mono pipeline benchmark, {m['date_utc']}: {cfg['command']}")
    add(harness.machine_line(m))
    add(f"software  Python {m['python']}, apache-beam {m['apache_beam']}, sentencepiece "
        f"{m['sentencepiece']}, pyarrow {m['pyarrow']}; sluice {m['sluice_git_commit'][:12]}")
    add(f"input     {cfg['input']} x{cfg['scale']}: {inp['repositories']} repositories in the manifest")
    if cfg["scale"] > 1:
        add(f"          copies are exact duplicates of the {inp['repositories'] // cfg['scale']} "
            "originals (same archives): every stage up to exact dedup sees x"
            f"{cfg['scale']} the data, exact dedup removes the copies, later stages see x1")
    add(f"pipeline  pipelines.mono --num_shards {cfg['num_shards']} {' '.join(cfg['mono_args'])}".rstrip()
        + " (" + ", ".join(f"{k} {'on' if v else 'off'}" for k, v in out["optional_stages"].items())
        + "), FnApiRunner in process; "
        f"{cfg['repeat']} timed run{'s' if cfg['repeat'] > 1 else ''} per worker count")
    lines.extend(harness.load_lines(r["background"], m["nproc"]))
    add("")
    add(f"tokenizer training (pipelines.tokenizer --vocab_size {cfg['vocab_size']}, once, on "
        f"{os.path.relpath(cfg['tokenizer_input'], REPO)}): "
        + (f"{r['tokenizer_seconds']:.2f} s" if r["tokenizer_seconds"] is not None
           else f"skipped, --tokenizer {cfg['tokenizer']}"))
    add(f"import pipelines.mono (paid by every CLI run, not in the wall times): {r['import_seconds']:.2f} s")
    add(f"warm-up run with --write_documents --write_rejects: {r['side_output_run_seconds']:.2f} s")
    return lines


def render_data(inp: dict, out: dict) -> list[str]:
    """What went in and what came out."""
    return [
        "Input (MB = 10^6 bytes)",
        f"  archives read                     {inp['archives_read']:>12}   "
        f"(repositories past the star and license filters)",
        f"  compressed archive bytes read     {inp['compressed_bytes'] / MB:>9.2f} MB   "
        "(manifest inputs.archives.compressed_bytes)",
        f"  files read, uncompressed          {inp['uncompressed_file_bytes'] / MB:>9.2f} MB   "
        f"({fmt_int(inp['files_read'])} files; summed with iter_members)",
        f"  curated documents kept            {fmt_int(out['documents']):>12}   (kept by stage: "
        + " > ".join(f"{stage} {fmt_int(n)}" for stage, n in out["funnel"]) + ")",
        f"  curated text, UTF-8               {inp['curated_bytes'] / MB:>9.2f} MB   "
        "(the text that is tokenized)",
        "Output",
        f"  tokens in shards                  {fmt_int(out['tokens']):>12}   "
        f"({fmt_int(out['records'])} sequences x {out['seq_len']}; {fmt_int(out['dropped_tail_tokens'])} "
        "tail tokens dropped)",
        f"  document tokens, with EOT         {fmt_int(out['document_tokens']):>12}",
        f"  shard files                       {out['shard_bytes'] / MB:>9.2f} MB",
    ]


def render_throughput(runs: dict) -> list[str]:
    """One column per worker count."""
    cols = list(runs.keys())
    header = "".join(f"{c:>22}" for c in cols)
    rows = [
        ("wall s, median", lambda t: f"{t['wall_seconds_median']:.2f}"),
        ("wall s, all runs", lambda t: fmt_s(t["wall_seconds"])),
        ("CPU s (with workers), median", lambda t: f"{t['cpu_seconds_median']:.2f}"),
        ("compressed input MB/s", lambda t: f"{t['compressed_mb_per_s']:.3f}"),
        ("uncompressed input MB/s", lambda t: f"{t['uncompressed_mb_per_s']:.3f}"),
        ("curated text MB/s", lambda t: f"{t['curated_mb_per_s']:.3f}"),
        ("output tokens/s", lambda t: fmt_int(round(t["output_tokens_per_s"]))),
        ("wall / raw encode wall (ratio)", lambda t: f"{t['ratio_to_raw_encode']:.2f}x"),
        ("CPU / raw encode CPU (ratio)", lambda t: f"{t['cpu_ratio_to_raw_encode']:.2f}x"),
    ]
    return [f"Throughput{'':26}{header}"] + [
        f"  {name:<34}" + "".join(f"{cell(runs[c]):>22}" for c in cols) for name, cell in rows]


def render_references(e: dict, rr: dict, out: dict) -> list[str]:
    """SentencePiece encode alone, and the read stage's own work outside Beam."""
    raw_s, wrap_s = e["raw_seconds_median"], e["wrapper_seconds_median"]
    return [
        f"SentencePiece encode, same {fmt_int(e['documents'])} curated texts ({e['bytes'] / MB:.2f} MB), "
        f"one call per document, single thread, median of {len(e['raw_seconds'])}",
        f"  raw SentencePieceProcessor.encode  {raw_s:>7.2f} s  {e['bytes'] / MB / raw_s:>7.3f} MB/s  "
        f"{fmt_int(round(e['raw_tokens'] / raw_s)):>10} tokens/s   {fmt_s(e['raw_seconds'])}; "
        f"CPU {e['raw_cpu_seconds_median']:.2f} s",
        f"  Sluice Tokenizer.encode_array      {wrap_s:>7.2f} s  {e['bytes'] / MB / wrap_s:>7.3f} MB/s  "
        f"{fmt_int(round(e['wrapper_tokens'] / wrap_s)):>10} tokens/s   {fmt_s(e['wrapper_seconds'])}",
        f"  tokens: raw {fmt_int(e['raw_tokens'])}, pipeline's tokenize counter "
        f"{fmt_int(out['tokenize_tokens'])}",
        f"Read stage's own work outside Beam (iter_members + UTF-8 + sha256, {rr['archives']} archives): "
        f"{rr['seconds']:.2f} s, {rr['compressed_bytes'] / MB / rr['seconds']:.2f} compressed MB/s",
    ]


def render_profile(p: dict, unprofiled: float, encode_alone: float) -> list[str]:
    """The share of time per stage, Sluice's stages then Beam's overhead, and the hottest frames."""
    lines = []
    add = lines.append
    runs_text = "one extra 1-worker run" if p["runs"] == 1 else f"{p['runs']} extra 1-worker runs"
    add(f"Share of time per stage: {runs_text} under a sampling profiler (every {p['interval_ms']:g} ms, "
        f"{fmt_int(p['samples'])} samples, time-weighted;")
    add(f"wall {fmt_s(p['wall_seconds'])} s vs {unprofiled:.2f} s unprofiled median). "
        "Stage = innermost Sluice frame on the pipeline thread's stack; see bench/README.md.")
    add(f"  {'stage':<62}{'s/run':>8}{'share':>8}")

    def row(label, seconds):
        add(f"  {label:<62}{seconds / p['runs']:>8.2f}{seconds / p['total_seconds']:>7.1%}")

    others = sorted(k for k in p["seconds"] if k.startswith("other Sluice code"))
    for key, label in STAGE_LABELS:
        seconds = p["seconds"].get(key, 0.0)
        if key in OPTIONAL_STAGES and not seconds:  # not part of this run's pipeline
            continue
        if key == BEAM_STAGES[0]:
            for other in others:
                row(other, p["seconds"][other])
            row("= Sluice stages, total", p["sluice_seconds"])
        row(label, seconds)
        if key == BEAM_STAGES[-1]:
            row("= Beam overhead, total", p["beam_seconds"])
    add("  hottest innermost frames (stage), s/run:")
    for h in p["hotspots"][:6]:
        add(f"    {h['seconds'] / p['runs']:6.2f}  {h['frame']} ({h['stage']})")
    add(f"  tokenize stage in the pipeline {p['seconds'].get('tokenize', 0.0) / p['runs']:.2f} s/run vs "
        f"Tokenizer.encode_array alone {encode_alone:.2f} s; samples of Sluice code on other threads: "
        f"{p['off_thread_samples']}")
    return lines


def render(r: dict) -> str:
    return "\n".join([
        *render_header(r), "",
        *render_data(r["input"], r["output"]), "",
        *render_throughput(r["runs"]), "",
        *render_references(r["encode"], r["read_reference"], r["output"]), "",
        *render_profile(r["profile"], r["runs"]["1 worker"]["wall_seconds_median"],
                        r["encode"]["wrapper_seconds_median"]),
    ])


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other flag goes to every pipelines.mono run (e.g. --no-near_dedup, --seq_len 1024).")
    parser.add_argument("--input", default=DEFAULT_INPUT, 
                        help="Manifest JSONL (default: the bundled samples).")
    parser.add_argument("--scale", type=int, default=1,
                        help="Repeat the input's repositories N times under distinct names.")
    parser.add_argument("--repeat", type=int, default=3,
                        help="Timed runs per worker count (median reported).")
    parser.add_argument("--workers", type=int, default=1,
                        help="Also time multi_processing with this many workers, next to 1 worker.")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--tokenizer", help="Use this tokenizer.model instead of training one.")
    parser.add_argument("--sample_interval_ms", type=float, default=5.0, help="Profiler sampling interval.")
    parser.add_argument("--profile_runs", type=int, default=1,
                        help="Extra 1-worker runs under the sampling profiler; shares are over all of them.")
    parser.add_argument("--json", help="Write every figure as JSON to this path.")
    parser.add_argument("--workdir", help="Folder for outputs (default: a temporary folder, removed).")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    args, args.mono_args = parser.parse_known_args(argv)
    for name in ("scale", "repeat", "workers", "profile_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be >= 1")
    return args


class MonoRuns:
    """The ``pipelines.mono`` runs of one benchmark, all on the same input and tokenizer; every
    run's manifest is kept, to check that they all produced the same dataset."""

    def __init__(self, args, workdir: str, manifest: str, model: str, log):
        self.args, self.workdir, self.manifest, self.model, self.log = args, workdir, manifest, model, log
        self.configs = {"1 worker": []}
        if args.workers > 1:
            self.configs[f"{args.workers} workers"] = ["--direct_running_mode=multi_processing",
                                                       f"--direct_num_workers={args.workers}"]
        self.walls = {name: [] for name in self.configs}
        self.cpus = {name: [] for name in self.configs}
        self.results = []

    def run(self, output: str, extra=()):
        return run_mono(self.manifest, os.path.join(self.workdir, output), self.model, self.args.num_shards,
                        [*self.args.mono_args, *extra])

    def timed(self, name: str, i: int) -> None:
        self.log(f"timed run {i + 1}/{self.args.repeat}, {name}")
        wall, cpu, result = self.run("mono", self.configs[name])
        self.walls[name].append(wall)
        self.cpus[name].append(cpu)
        self.results.append(result)

    def measure(self, encoder: EncodeReference) -> tuple[StageSampler, list[float]]:
        """Steps 3 to 5 of the module's docstring: (the profiler's totals, the profiled runs' walls)."""
        for i in range(self.args.repeat):
            self.timed("1 worker", i)
            encoder.one_pass()  # SentencePiece alone, right after the run it is compared with
        interval = self.args.sample_interval_ms / 1000
        sampler = StageSampler(interval)  # totals over the profiled runs
        profile_walls = []
        for i in range(self.args.profile_runs):
            self.log(f"profiled run {i + 1}/{self.args.profile_runs}")
            one = StageSampler(interval)
            with one:
                wall, _, result = self.run("mono")
            profile_walls.append(wall)
            self.results.append(result)
            sampler.add(one)
        for name in list(self.configs)[1:]:
            for i in range(self.args.repeat):
                self.timed(name, i)
        return sampler, profile_walls

    def check_same_output(self, reference: dict) -> None:
        for result in self.results:  # every run must have produced the same dataset
            if result["totals"] != reference["totals"] or [s["files"] for s in result["shards"]] != [
                    s["files"] for s in reference["shards"]]:
                raise SystemExit("bench: runs produced different outputs; figures would not compare")

    def summary(self, inputs: dict, out: dict, encode: dict) -> dict:
        return {
            name: {"wall_seconds": self.walls[name], "cpu_seconds": self.cpus[name],
                   **throughput(median(self.walls[name]), median(self.cpus[name]), inputs, out, encode)}
            for name in self.configs
        }


def input_summary(repos: list[dict], out: dict, read_ref: dict, encode: dict, log) -> dict:
    inputs = {
        "repositories": len(repos),
        "archives_read": out["archives_read"],
        "compressed_bytes": out["compressed_bytes"],
        "files_read": out["files_read"],
        "uncompressed_file_bytes": read_ref["uncompressed_file_bytes"],
        "curated_bytes": encode["bytes"],
    }
    if read_ref["compressed_bytes"] != out["compressed_bytes"] or read_ref["files"] < out["files_read"]:
        log(f"warning: the read reference saw {read_ref['compressed_bytes']} compressed bytes and "
            f"{read_ref['files']} files, the pipeline {out['compressed_bytes']} and {out['files_read']}")
    return inputs


def profile_summary(sampler: StageSampler, args, walls: list[float]) -> dict:
    total = sum(sampler.seconds.values())
    beam_s = sum(sampler.seconds[k] for k in BEAM_STAGES)
    sluice_s = total - beam_s - sampler.seconds["driver"]
    return {
        "interval_ms": args.sample_interval_ms,
        "runs": args.profile_runs,
        "wall_seconds": walls,
        "total_seconds": total,
        "samples": sum(sampler.samples.values()),
        "seconds": dict(sampler.seconds),
        "share": {k: v / total for k, v in sampler.seconds.items()},
        "sluice_seconds": sluice_s,
        "sluice_share": sluice_s / total,
        "beam_seconds": beam_s,
        "beam_share": beam_s / total,
        "off_thread_samples": sampler.off_thread_samples,
        "hotspots": [{"stage": stage, "frame": leaf, "seconds": seconds}
                     for (stage, leaf), seconds in sampler.hotspots.most_common(20)],
    }


def config_summary(args, command: str) -> dict:
    input_manifest = os.path.abspath(args.input)
    return {"command": command, "input": os.path.relpath(input_manifest, REPO),
            "scale": args.scale, "repeat": args.repeat, "workers": args.workers,
            "profile_runs": args.profile_runs, "num_shards": args.num_shards,
            "mono_args": args.mono_args, "vocab_size": args.vocab_size,
            "tokenizer": args.tokenizer, "tokenizer_input": input_manifest}


def main(argv=None) -> dict:
    args = parse_args(argv)
    command = harness.command_line(__file__, argv)
    load = harness.MachineLoad()
    t0 = time.perf_counter()
    import pipelines.mono  # noqa: F401 - timed: the import cost every CLI run pays
    import_seconds = time.perf_counter() - t0
    log = harness.elapsed_logger(load.started)
    input_manifest = os.path.abspath(args.input)
    with harness.work_folder(args.workdir, "sluice-bench-", keep=bool(args.workdir or args.keep)) as workdir:
        machine = harness.pipeline_machine_info()
        manifest, repos = build_input(input_manifest, args.scale, workdir)
        model, tokenizer_seconds = harness.tokenizer_model(args.tokenizer, input_manifest, workdir,
                                                           args.vocab_size, log)
        runs = MonoRuns(args, workdir, manifest, model, log)
        log("warm-up run with side outputs")
        side_seconds, _, side_result = runs.run("mono-side", ["--write_documents", "--write_rejects"])
        out = output_summary(side_result)
        texts, skipped = harness.read_side_outputs(os.path.join(workdir, "mono-side"))
        encoder = EncodeReference(texts, model)
        sampler, profile_walls = runs.measure(encoder)
        runs.check_same_output(side_result)
        log("reference outside Beam: the read stage's own work")
        read_ref = read_reference(repos, skipped)
        encode = encoder.summary()
        inputs = input_summary(repos, out, read_ref, encode, log)
        report = {
            "machine": machine,
            "config": config_summary(args, command),
            "tokenizer_seconds": tokenizer_seconds,
            "import_seconds": import_seconds,
            "side_output_run_seconds": side_seconds,
            "input": inputs,
            "output": {k: v for k, v in out.items() if k != "counts"},
            "counts": out["counts"],
            "runs": runs.summary(inputs, out, encode),
            "encode": encode,
            "read_reference": read_ref,
            "profile": profile_summary(sampler, args, profile_walls),
        }
        return harness.publish_report(report, render, args.json, load)


if __name__ == "__main__":
    main()
