#!/usr/bin/env python
"""Benchmark of the NL and Multi pipelines end to end on this machine.

    python bench/corpus_pipelines.py [--pipelines nl,multi] [--nl_input GLOBS] [--snapshot DIR]
                                     [--scale N] [--repeat R] [--vocab_size 8000] [--num_shards 4]
                                     [--tokenizer MODEL] [--nl_flags '...'] [--multi_flags '...']
                                     [--json PATH] [--workdir DIR] [--keep]

Reports, per pipeline, input MB/s and output tokens/s (median of R runs, wall and CPU time), and
SentencePiece's raw encode speed on exactly the documents the same pipeline kept, so its overhead
over its unavoidable tokenization cost is one ratio. The Mono counterpart is bench/mono_pipeline.py,
whose machine, load and encode helpers this script imports. See bench/README.md.

Runs, in this order, all in this process (the FnApiRunner's in_memory mode runs every bundle on
the calling thread):
  1. pipelines.tokenizer --source mono on the Mono samples, once (CodeGen used one tokenizer for all
     its corpora, and so does `make demo`); timed on its own, not part of any throughput;
  2. per pipeline, one warm-up run with --write_documents (its kept texts feed the encode reference;
     its wall time is reported on its own);
  3. R rounds of: one timed NL run, one pass of SentencePiece encode alone over NL's kept texts,
     one timed Multi run, one encode pass over Multi's kept texts (interleaved, so both pipelines
     and their references see the same machine conditions);
  4. references outside Beam: NL's read stage's own work (zstd stream, line split, JSON, sha256)
     and Multi's DuckDB query alone (it runs on the driver, inside Multi's wall time).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

# Importing mono_pipeline puts the repository on sys.path and PYTHONPATH and quiets Beam's logging.
from mono_pipeline import (  # noqa: E402
    MB,
    REPO,
    EncodeReference,
    cpu_seconds,
    fmt_int,
    fmt_s,
    loadavg,
    machine_busy_seconds,
    machine_info,
    median,
    publish_report,
    read_side_outputs,
    remove_workdir,
    train_tokenizer,
)

DEFAULT_NL_INPUT = "samples/nl/train/*.jsonl.zst,samples/nl/val.jsonl.zst"  # as `make demo`
DEFAULT_SNAPSHOT = "samples/multi/snapshot"
DEFAULT_TOKENIZER_INPUT = "samples/mono/manifest.jsonl"
PIPELINES = ("nl", "multi")
# Counter namespaces of the document-level stages, in pipeline order (the "kept" funnel).
FUNNEL = {
    "nl": ("read", "set_filter", "exact_dedup", "near_dedup"),
    "multi": ("read", "quality", "exact_dedup", "decontaminate", "near_dedup"),
}
# Copies get a suffix that sorts after the original's id separator, so exact dedup (smallest id
# kept) keeps the originals and a scaled run publishes the same documents as an unscaled one.
COPY_SUFFIX = "_copy{k}"


def extra_versions() -> dict:
    from importlib import metadata

    versions = {}
    for dist in ("duckdb", "sqlglot", "zstandard"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


# --------------------------------------------------------------------------------------------
# Inputs, scaled


def nl_files(patterns: list[str]) -> list[str]:
    from transforms.sources.pile_reader import match_inputs

    return [m.path for m in match_inputs(patterns)]


def scale_nl(patterns: list[str], scale: int, workdir: str) -> tuple[list[str], list[str]]:
    """(patterns to run on, the files they match). At scale N > 1: a folder holding every file N
    times, ``00.jsonl.zst``, ``00_copy1.jsonl.zst``, ... (byte copies under new names, so every
    line is read N times; exact dedup then removes the copies, keeping the originals)."""
    files = nl_files(patterns)
    if scale == 1:
        return patterns, files
    folder = os.path.join(workdir, f"nl-x{scale}")
    os.makedirs(folder)
    for path in files:
        name = os.path.basename(path)
        stem, dot, suffix = name.partition(".")
        for k in range(scale):
            copy = name if k == 0 else f"{stem}{COPY_SUFFIX.format(k=k)}{dot}{suffix}"
            shutil.copyfile(path, os.path.join(folder, copy))
    pattern = os.path.join(folder, "*")
    return [pattern], nl_files([pattern])


def scale_snapshot(snapshot: str, scale: int, workdir: str) -> str:
    """The snapshot to run on. At scale N > 1: every repository N times, ``owner/name``,
    ``owner/name_copy1``, ..., in all five tables, with its files' content ids suffixed the same
    way, so the query (one row per content id) returns every row N times; exact dedup then removes
    the copies, keeping the originals."""
    if scale == 1:
        return snapshot
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from transforms.sources.github_sql import SNAPSHOT_TABLES

    renamed = {"contents": ("id",), "files": ("repo_name", "id"), "licenses": ("repo_name",),
               "languages": ("repo_name",), "sample_repos": ("repo_name",)}
    folder = os.path.join(workdir, f"snapshot-x{scale}")
    os.makedirs(folder)
    for name in SNAPSHOT_TABLES:
        table = pq.read_table(os.path.join(snapshot, f"{name}.parquet"))
        copies = [table]
        for k in range(1, scale):
            copy = table
            for column in renamed[name]:
                values = pc.binary_join_element_wise(
                    copy.column(column), pa.scalar(COPY_SUFFIX.format(k=k)), pa.scalar(""))
                copy = copy.set_column(copy.schema.get_field_index(column), column, values)
            copies.append(copy)
        # zstd, as samples/multi/build_snapshot.py writes the bundled snapshot.
        pq.write_table(pa.concat_tables(copies), os.path.join(folder, f"{name}.parquet"), compression="zstd")
    return folder


# --------------------------------------------------------------------------------------------
# Runs


def run_pipeline(name: str, argv: list[str]) -> dict:
    """One in-process ``pipelines.<name>.main(argv)``: wall, CPU (process and reaped children),
    CPU other processes used meanwhile (from /proc/stat), and the manifest it published."""
    from pipelines import multi, nl

    main = {"nl": nl.main, "multi": multi.main}[name]
    shutil.rmtree(argv[argv.index("--output") + 1], ignore_errors=True)  # versions are immutable
    busy, _ = machine_busy_seconds()
    cpu = cpu_seconds()
    started = time.perf_counter()
    manifest = main(argv)
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    other = max(0.0, machine_busy_seconds()[0] - busy - cpu)
    return {"wall": wall, "cpu": cpu, "other_cpu": other, "manifest": manifest}


def fingerprint(manifest: dict):
    """What must not change between runs: totals and every shard file's sha256."""
    return manifest["totals"], [shard["files"] for shard in manifest["shards"]]


def funnel(name: str, counts: dict) -> list:
    return [(stage, counts[stage]["kept"]) for stage in FUNNEL[name] if "kept" in counts.get(stage, {})]


def optional_stages(name: str, config: dict) -> dict:
    """Which of the stages a flag turns on or off ran (NL and Multi differ by default)."""
    keys = {"nl": ("exact_dedup", "near_dedup"),
            "multi": ("decontamination", "near_dedup", "language_tags")}[name]
    return {key: config.get(key) not in (None, False) for key in keys}


def output_summary(manifest: dict) -> dict:
    totals = manifest["totals"]
    return {
        "documents": totals["documents"],
        "tokens": totals["tokens"],
        "document_tokens": totals["document_tokens"],
        "records": totals["records"],
        "seq_len": manifest["config"]["seq_len"],
        "dropped_tail_tokens": totals["dropped_tail_tokens"],
        "shard_bytes": totals["bytes"],
        "tokenize_tokens": manifest["counts"].get("tokenize", {}).get("tokens", 0),
    }


def nl_input_summary(manifest: dict) -> dict:
    t = manifest["inputs"]["totals"]
    sets = manifest["sets"]
    return {
        "files": t["files"],
        "lines": t["lines"],
        "compressed_bytes": t["bytes"],
        "decompressed_bytes": t["uncompressed_bytes"],
        "read_text_bytes": sum(s["read"]["bytes"] for s in sets.values()),
        "kept_text_bytes": sum(s["kept"]["bytes"] for s in sets.values()),
    }


def multi_input_summary(manifest: dict) -> dict:
    inputs, languages = manifest["inputs"], manifest["languages"]
    return {
        "rows": inputs["query"]["rows"],
        "content_bytes": inputs["query"]["bytes"],
        "languages_read_bytes": sum(v["read"]["bytes"] for v in languages.values()),
        "snapshot_parquet_bytes": sum(t["bytes"] for t in inputs["tables"].values()),
        "snapshot_rows": {name: t["rows"] for name, t in inputs["tables"].items()},
        "kept_text_bytes": sum(v["kept"]["bytes"] for v in languages.values()),
        "tag_tokens": manifest["totals"]["documents"] if manifest["config"]["language_tags"] else 0,
    }


# --------------------------------------------------------------------------------------------
# References outside Beam


def nl_read_reference(files: list[str]) -> dict:
    """NL's read stage's own work, outside Beam: the functions ``_ReadPileFileFn`` calls (stream
    decompression, line split, JSON parse and checks, sha256 of each text)."""
    from transforms.sources.pile_reader import (DEFAULT_MAX_LINE_BYTES, _CountingReader, compression_of,
                                        decompressed_chunks, iter_lines, parse_line)

    lines = compressed = 0
    cpu, started = time.process_time(), time.perf_counter()
    for path in files:
        with open(path, "rb") as handle:
            raw = _CountingReader(handle)
            chunks = decompressed_chunks(raw, compression_of(os.path.basename(path)))
            for line, _ in iter_lines(chunks, DEFAULT_MAX_LINE_BYTES):
                lines += 1
                try:
                    _, _, data = parse_line(line)
                except (ValueError, AttributeError):
                    continue
                hashlib.sha256(data).hexdigest()
            compressed += raw.bytes_read
    return {"files": len(files), "lines": lines, "compressed_bytes": compressed,
            "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


def multi_query_reference(snapshot: str, folder: str, manifest: dict) -> dict:
    """Multi's query alone, as its driver runs it: the SQL transpiled to DuckDB over the snapshot,
    streamed into Parquet (``github_sql.export_snapshot_query``), with the parameters and stars
    table the warm-up run's manifest records."""
    from transforms.sources import github_sql

    named = manifest["inputs"]["query"]["parameters"]
    params = github_sql.QueryParams(
        languages=tuple(sorted(set(named["extension_languages"]))), licenses=tuple(named["licenses"]),
        min_bytes=named["min_bytes"], max_bytes=named["max_bytes"], min_stars=named["min_stars"])
    if params.named() != named:
        raise SystemExit("bench: cannot rebuild Multi's query parameters from its manifest")
    cpu, started = cpu_seconds(), time.perf_counter()
    result = github_sql.export_snapshot_query(snapshot, params, folder,
                                              manifest["inputs"]["query"]["stars_table"])
    return {**result, "seconds": time.perf_counter() - started, "cpu_seconds": cpu_seconds() - cpu}


# --------------------------------------------------------------------------------------------
# Report


def throughput(name: str, runs: dict, inp: dict, out: dict, encode: dict) -> dict:
    wall, cpu = median(runs["wall_seconds"]), median(runs["cpu_seconds"])
    per_s = {"nl": ("compressed_bytes", "decompressed_bytes"),
             "multi": ("content_bytes", "snapshot_parquet_bytes")}[name]
    return {
        "wall_seconds_median": wall,
        "cpu_seconds_median": cpu,
        **{f"{key[:-len('_bytes')]}_mb_per_s": inp[key] / MB / wall for key in per_s},
        "kept_text_mb_per_s": encode["bytes"] / MB / wall,
        "output_tokens_per_s": out["tokens"] / wall,
        "output_tokens_per_cpu_s": out["tokens"] / cpu,
        "ratio_to_raw_encode": wall / encode["raw_seconds_median"],
        "cpu_ratio_to_raw_encode": cpu / encode["raw_cpu_seconds_median"],
    }


def render_pipeline(name: str, p: dict) -> list[str]:
    lines = []
    add = lines.append
    inp, out, runs, tp, e = p["input"], p["output"], p["runs"], p["throughput"], p["encode"]
    add(f"{name.upper()}: pipelines.{name} {' '.join(p['argv_shown'])} ("
        + ", ".join(f"{k} {'on' if v else 'off'}" for k, v in p["optional_stages"].items()) + ")")
    if name == "nl":
        add(f"  input     {inp['files']} files, {fmt_int(inp['lines'])} lines: "
            f"{inp['compressed_bytes'] / MB:.3f} MB compressed (.jsonl.zst), "
            f"{inp['decompressed_bytes'] / MB:.3f} MB decompressed (manifest inputs.totals), "
            f"{inp['read_text_bytes'] / MB:.3f} MB of text read")
    else:
        snap = inp["snapshot_rows"]
        add(f"  input     query returned {fmt_int(inp['rows'])} rows, {inp['content_bytes'] / MB:.3f} MB of "
            f"content (inputs.query.bytes; languages read {inp['languages_read_bytes'] / MB:.3f} MB);")
        add(f"            snapshot Parquet {inp['snapshot_parquet_bytes'] / MB:.3f} MB "
            f"({fmt_int(snap['contents'])} contents, {fmt_int(snap['files'])} files rows)")
    add(f"  kept      {fmt_int(out['documents'])} documents, {e['bytes'] / MB:.3f} MB of text (kept by stage: "
        + " > ".join(f"{stage} {fmt_int(n)}" for stage, n in p["funnel"]) + ")")
    add(f"  output    {fmt_int(out['tokens'])} tokens in shards ({fmt_int(out['records'])} sequences x "
        f"{out['seq_len']}; {fmt_int(out['dropped_tail_tokens'])} tail tokens dropped), "
        f"{out['shard_bytes'] / MB:.2f} MB of shard files")
    add(f"  warm-up run with --write_documents: {p['warmup_seconds']:.2f} s")
    add(f"  wall s    median {tp['wall_seconds_median']:.2f}  all {fmt_s(runs['wall_seconds'])}")
    add(f"  CPU s     median {tp['cpu_seconds_median']:.2f}  all {fmt_s(runs['cpu_seconds'])}   "
        f"(other processes meanwhile: {fmt_s(runs['other_cpus'])} CPUs)")
    if name == "nl":
        add(f"  in        {tp['compressed_mb_per_s']:.3f} MB/s compressed, {tp['decompressed_mb_per_s']:.3f} MB/s "
            f"decompressed, {tp['kept_text_mb_per_s']:.3f} MB/s kept text")
    else:
        add(f"  in        {tp['content_mb_per_s']:.3f} MB/s of content returned, "
            f"{tp['snapshot_parquet_mb_per_s']:.3f} MB/s of snapshot Parquet, "
            f"{tp['kept_text_mb_per_s']:.3f} MB/s kept text")
    add(f"  out       {fmt_int(round(tp['output_tokens_per_s']))} tokens/s (wall), "
        f"{fmt_int(round(tp['output_tokens_per_cpu_s']))} tokens per CPU-s")
    raw_s, wrap_s = e["raw_seconds_median"], e["wrapper_seconds_median"]
    add(f"  SentencePiece encode alone, same {fmt_int(e['documents'])} kept texts ({e['bytes'] / MB:.3f} MB), "
        f"one call per document, single thread, median of {len(e['raw_seconds'])}:")
    add(f"    raw SentencePieceProcessor.encode  {raw_s:6.3f} s  {e['bytes'] / MB / raw_s:6.3f} MB/s  "
        f"{fmt_int(round(e['raw_tokens'] / raw_s)):>10} tokens/s  {fmt_s(e['raw_seconds'])}; "
        f"CPU {e['raw_cpu_seconds_median']:.3f} s")
    add(f"    Sluice Tokenizer.encode_array      {wrap_s:6.3f} s  {e['bytes'] / MB / wrap_s:6.3f} MB/s  "
        f"{fmt_int(round(e['wrapper_tokens'] / wrap_s)):>10} tokens/s  {fmt_s(e['wrapper_seconds'])}")
    tags = inp.get("tag_tokens", 0)
    add(f"    tokens: raw {fmt_int(e['raw_tokens'])}"
        + (f" + {fmt_int(tags)} language tags = {fmt_int(e['raw_tokens'] + tags)}" if tags else "")
        + f"; pipeline's tokenize counter {fmt_int(out['tokenize_tokens'])}")
    add(f"  pipeline / raw encode: {tp['ratio_to_raw_encode']:.1f}x wall, "
        f"{tp['cpu_ratio_to_raw_encode']:.1f}x CPU")
    ref = p["reference"]
    if name == "nl":
        add(f"  read stage's own work outside Beam (zstd stream, lines, JSON, sha256; {ref['files']} files): "
            f"{ref['seconds']:.3f} s, {ref['compressed_bytes'] / MB / ref['seconds']:.2f} compressed MB/s")
    else:
        add(f"  DuckDB query alone (transpiled SQL over the snapshot into Parquet, on the driver, "
            f"inside the wall above): {ref['seconds']:.3f} s, CPU {ref['cpu_seconds']:.3f} s, "
            f"{fmt_int(ref['rows'])} rows")
    return lines


def render(r: dict) -> str:
    m, cfg = r["machine"], r["config"]
    lines = []
    add = lines.append
    add(f"Sluice NL and Multi pipeline benchmark, {m['date_utc']}: {cfg['command']}")
    add(f"machine   {m['nproc']} CPUs (nproc), {m['cpu_model']}, {m['mem_gib']} GiB RAM, {m['platform']}")
    add(f"software  Python {m['python']}, apache-beam {m['apache_beam']}, sentencepiece {m['sentencepiece']}, "
        f"pyarrow {m['pyarrow']}, duckdb {m['duckdb']}, sqlglot {m['sqlglot']}, zstandard {m['zstandard']}; "
        f"sluice {m['sluice_git_commit'][:12]}")
    add(f"runs      FnApiRunner in process, 1 worker, --num_shards {cfg['num_shards']}; scale x{cfg['scale']}; "
        f"{cfg['repeat']} timed run{'s' if cfg['repeat'] > 1 else ''} per pipeline, NL and Multi interleaved")
    if cfg["scale"] > 1:
        add(f"          inputs repeated x{cfg['scale']} under new names (NL: file copies; Multi: repositories and "
            "content ids in every snapshot table): every stage up to exact dedup sees x"
            f"{cfg['scale']}, exact dedup removes the copies (originals kept), later stages see x1")
    b = r["background"]
    add(f"load      other processes used {b['other_cpu_seconds']:.0f} CPU-s during the bench's "
        f"{b['wall_seconds']:.0f} s ({b['other_cpus']:.2f} of {m['nproc']} CPUs; steal {b['steal_seconds']:.0f} s); "
        "loadavg " + " -> ".join(b["loadavg"]))
    if b["other_cpus"] > 0.2:
        add("          WARNING: other processes competed for the CPUs; wall times are inflated and noisy. "
            "Rerun on an idle machine (CPU-time figures are less affected).")
    add("")
    tok = (f"{r['tokenizer_seconds']:.2f} s" if r["tokenizer_seconds"] is not None
           else f"skipped, --tokenizer {cfg['tokenizer']}")
    add(f"tokenizer (pipelines.tokenizer --source mono --vocab_size {cfg['vocab_size']}, once, on "
        f"{cfg['tokenizer_input']}; used by both): {tok}")
    add("imports (paid once per CLI run, not in the wall times): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in r["import_seconds"].items()))
    add("MB = 10^6 bytes; every rate divides by the median wall time of the timed runs.")
    for name in cfg["pipelines"]:
        add("")
        lines.extend(render_pipeline(name, r["pipelines"][name]))
    add("")
    names = cfg["pipelines"]
    cell = {name: r["pipelines"][name]["throughput"] for name in names}
    add("Summary" + " " * 33 + "".join(f"{n.upper():>16}" for n in names))
    rows = [
        ("wall s, median", lambda n: f"{cell[n]['wall_seconds_median']:.2f}"),
        ("CPU s, median", lambda n: f"{cell[n]['cpu_seconds_median']:.2f}"),
        ("MB/s in (NL compressed, Multi content)",
         lambda n: f"{cell[n]['compressed_mb_per_s' if n == 'nl' else 'content_mb_per_s']:.3f}"),
        ("MB/s in (NL decompr., Multi Parquet)",
         lambda n: f"{cell[n]['decompressed_mb_per_s' if n == 'nl' else 'snapshot_parquet_mb_per_s']:.3f}"),
        ("MB/s kept text", lambda n: f"{cell[n]['kept_text_mb_per_s']:.3f}"),
        ("output tokens/s", lambda n: fmt_int(round(cell[n]["output_tokens_per_s"]))),
        ("output tokens per CPU-s", lambda n: fmt_int(round(cell[n]["output_tokens_per_cpu_s"]))),
        ("raw encode tokens/s", lambda n: fmt_int(round(
            r["pipelines"][n]["encode"]["raw_tokens"] / r["pipelines"][n]["encode"]["raw_seconds_median"]))),
        ("pipeline / raw encode, wall", lambda n: f"{cell[n]['ratio_to_raw_encode']:.1f}x"),
        ("pipeline / raw encode, CPU", lambda n: f"{cell[n]['cpu_ratio_to_raw_encode']:.1f}x"),
    ]
    for label, fn in rows:
        add(f"  {label:<38}" + "".join(f"{fn(n):>16}" for n in names))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", default="nl,multi",
                        help="Comma-separated pipelines to measure (nl, multi).")
    parser.add_argument("--nl_input", default=DEFAULT_NL_INPUT,
                        help="NL --input: comma-separated globs (default: the bundled Pile samples).")
    parser.add_argument("--snapshot", default=DEFAULT_SNAPSHOT,
                        help="Multi --bigquery_snapshot folder (default: the bundled snapshot).")
    parser.add_argument("--scale", type=int, default=1,
                        help="Repeat every input N times under new names (exact dedup removes the copies).")
    parser.add_argument("--repeat", type=int, default=3, help="Timed runs per pipeline (median reported).")
    parser.add_argument("--vocab_size", type=int, default=8000)
    parser.add_argument("--num_shards", type=int, default=4)
    parser.add_argument("--tokenizer_input", default=DEFAULT_TOKENIZER_INPUT,
                        help="Mono manifest the tokenizer is trained on.")
    parser.add_argument("--tokenizer", help="Use this tokenizer.model instead of training one.")
    parser.add_argument("--nl_flags", default="", help="Extra flags for every NL run (one shell-quoted string).")
    parser.add_argument("--multi_flags", default="", help="Extra flags for every Multi run (one string).")
    parser.add_argument("--json", help="Write every figure as JSON to this path.")
    parser.add_argument("--workdir", help="Folder for outputs (default: a temporary folder, removed).")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    args = parser.parse_args(argv)
    for name in ("scale", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be >= 1")
    args.pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    unknown = [p for p in args.pipelines if p not in PIPELINES]
    if unknown or not args.pipelines:
        parser.error(f"--pipelines: choose among {', '.join(PIPELINES)}")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    command = " ".join(["python bench/corpus_pipelines.py", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    load_before, (busy_before, steal_before), cpu_before = loadavg(), machine_busy_seconds(), cpu_seconds()
    import_seconds = {}
    t0 = time.perf_counter()
    import pipelines.nl  # noqa: F401 - timed: the import cost every CLI run pays (Beam with it)
    import_seconds["pipelines.nl (with Beam)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import pipelines.multi  # noqa: F401 - its own imports on top (sqlglot, DuckDB are lazy)
    import_seconds["then pipelines.multi"] = time.perf_counter() - t0

    # User paths are relative to the caller's folder; the defaults to the repository root, where
    # the runs happen (so the manifests and the report show the bundled inputs' short paths).
    for name in ("json", "workdir", "tokenizer"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    if args.nl_input != DEFAULT_NL_INPUT:
        args.nl_input = ",".join(p if "://" in p else os.path.abspath(p) for p in args.nl_input.split(","))
    for name, default in (("snapshot", DEFAULT_SNAPSHOT), ("tokenizer_input", DEFAULT_TOKENIZER_INPUT)):
        if getattr(args, name) != default:
            setattr(args, name, os.path.abspath(getattr(args, name)))
    os.chdir(REPO)
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="sluice-bench-corpus-"))
    os.makedirs(workdir, exist_ok=True)

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        machine = {**machine_info(), **extra_versions()}
        if args.tokenizer:
            model, tokenizer_seconds = args.tokenizer, None
        else:
            log("training the tokenizer")
            tokenizer_seconds = train_tokenizer(args.tokenizer_input, os.path.join(workdir, "tok"),
                                                args.vocab_size)
            model = os.path.join(workdir, "tok", "tokenizer.model")

        argvs, shown, inputs = {}, {}, {}
        if "nl" in args.pipelines:
            patterns, inputs["nl"] = scale_nl(args.nl_input.split(","), args.scale, workdir)
            nl_flags = shlex.split(args.nl_flags)
            shown["nl"] = ["--input", ",".join(patterns), "--num_shards", str(args.num_shards), *nl_flags]
            argvs["nl"] = lambda out: ["--input", ",".join(patterns), "--output", out, "--tokenizer", model,
                                       "--num_shards", str(args.num_shards), *nl_flags]
        if "multi" in args.pipelines:
            snapshot = scale_snapshot(args.snapshot, args.scale, workdir)
            inputs["multi"] = snapshot
            multi_flags = shlex.split(args.multi_flags)
            shown["multi"] = ["--bigquery_snapshot", os.path.relpath(snapshot, REPO) if args.scale == 1
                              else snapshot, "--num_shards", str(args.num_shards), *multi_flags]
            argvs["multi"] = lambda out: ["--bigquery_snapshot", snapshot, "--output", out, "--tokenizer", model,
                                          "--num_shards", str(args.num_shards), *multi_flags]

        warm, encoders = {}, {}
        for name in args.pipelines:
            log(f"{name}: warm-up run with --write_documents")
            folder = os.path.join(workdir, f"{name}-warmup")
            warm[name] = run_pipeline(name, [*argvs[name](folder), "--write_documents"])
            texts, _ = read_side_outputs(folder)
            encoders[name] = EncodeReference(texts, model)

        timed = {name: [] for name in args.pipelines}
        for i in range(args.repeat):
            for name in args.pipelines:
                log(f"{name}: timed run {i + 1}/{args.repeat}")
                run = run_pipeline(name, argvs[name](os.path.join(workdir, name)))
                if fingerprint(run["manifest"]) != fingerprint(warm[name]["manifest"]):
                    raise SystemExit(f"bench: {name} runs produced different outputs; figures would not compare")
                timed[name].append(run)
                encoders[name].one_pass()  # SentencePiece alone, right after the run it is compared with

        results = {}
        for name in args.pipelines:
            manifest = warm[name]["manifest"]
            if name == "nl":
                log("nl: read stage's own work outside Beam")
                reference = nl_read_reference(inputs["nl"])
                inp = nl_input_summary(manifest)
            else:
                log("multi: DuckDB query alone")
                reference = multi_query_reference(inputs["multi"], os.path.join(workdir, "query-alone"),
                                                  manifest)
                if reference["rows"] != manifest["inputs"]["query"]["rows"]:
                    log(f"warning: the query alone returned {reference['rows']} rows, the pipeline's "
                        f"{manifest['inputs']['query']['rows']}")
                inp = multi_input_summary(manifest)
            out = output_summary(manifest)
            encode = encoders[name].summary()
            runs = {"wall_seconds": [t["wall"] for t in timed[name]],
                    "cpu_seconds": [t["cpu"] for t in timed[name]],
                    "other_cpus": [t["other_cpu"] / t["wall"] for t in timed[name]]}
            results[name] = {
                "argv_shown": shown[name],
                "optional_stages": optional_stages(name, manifest["config"]),
                "input": inp,
                "output": out,
                "funnel": funnel(name, manifest["counts"]),
                "counts": manifest["counts"],
                "warmup_seconds": warm[name]["wall"],
                "runs": runs,
                "encode": encode,
                "throughput": throughput(name, runs, inp, out, encode),
                "reference": reference,
            }
            if encode["bytes"] != inp["kept_text_bytes"]:
                log(f"warning: {name}: documents/ hold {encode['bytes']} bytes of text, the manifest says "
                    f"{inp['kept_text_bytes']} kept")

        bench_seconds = time.perf_counter() - started
        busy_after, steal_after = machine_busy_seconds()
        other_cpu = max(0.0, (busy_after - busy_before) - (cpu_seconds() - cpu_before))
        report = {
            "machine": machine,
            "config": {"command": command, "pipelines": args.pipelines, "nl_input": args.nl_input,
                       "snapshot": args.snapshot, "scale": args.scale, "repeat": args.repeat,
                       "num_shards": args.num_shards, "vocab_size": args.vocab_size,
                       "tokenizer": args.tokenizer, "tokenizer_input": args.tokenizer_input,
                       "nl_flags": args.nl_flags, "multi_flags": args.multi_flags},
            "background": {"wall_seconds": bench_seconds, "other_cpu_seconds": other_cpu,
                           "other_cpus": other_cpu / bench_seconds,
                           "steal_seconds": steal_after - steal_before,
                           "loadavg": [load_before, loadavg()]},
            "tokenizer_seconds": tokenizer_seconds,
            "import_seconds": import_seconds,
            "pipelines": results,
            "bench_seconds": bench_seconds,
        }
        return publish_report(report, render, args.json, bench_seconds)
    finally:
        remove_workdir(workdir, keep=bool(args.workdir or args.keep))


if __name__ == "__main__":
    main()
