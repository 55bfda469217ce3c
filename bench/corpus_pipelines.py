#!/usr/bin/env python
"""Benchmark of the NL and Multi pipelines end to end on this machine.

    python bench/corpus_pipelines.py [--pipelines nl,multi] [--nl_input GLOBS] [--snapshot DIR]
                                     [--scale N] [--repeat R] [--vocab_size 8000] [--num_shards 4]
                                     [--tokenizer MODEL] [--nl_flags '...'] [--multi_flags '...']
                                     [--json PATH] [--workdir DIR] [--keep]

Reports, per pipeline, input MB/s and output tokens/s (median of R runs, wall and CPU time), and
SentencePiece's raw encode speed on exactly the documents the same pipeline kept, so its overhead
over its unavoidable tokenization cost is one ratio. The Mono counterpart is bench/mono_pipeline.py;
both measure with bench/harness.py (machine, load, tokenizer, encode reference). See bench/README.md.

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
import time

import harness  # first: it puts the repository on sys.path and PYTHONPATH
from harness import MB, REPO, EncodeReference, fmt_int, fmt_s, median

harness.quiet_logging()  # before Beam is imported

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
    busy = harness.machine_cpu()[0]
    with harness.Stopwatch() as watch:
        manifest = main(argv)
    other = max(0.0, harness.machine_cpu()[0] - busy - watch.cpu)
    return {"wall": watch.wall, "cpu": watch.cpu, "other_cpu": other, "manifest": manifest}


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
    from schemas.pile import compression_of
    from transforms.sources.pile_reader import DEFAULT_MAX_LINE_BYTES, parse_line
    from transforms.sources.pile_stream import CountingReader, decompressed_chunks, iter_lines

    lines = compressed = 0
    with harness.Stopwatch() as watch:
        for path in files:
            with open(path, "rb") as handle:
                raw = CountingReader(handle)
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
            "seconds": watch.wall, "cpu_seconds": watch.cpu_self}


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
    with harness.Stopwatch() as watch:
        result = github_sql.export_snapshot_query(snapshot, params, folder,
                                                  manifest["inputs"]["query"]["stars_table"])
    return {**result, "seconds": watch.wall, "cpu_seconds": watch.cpu}


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
    """One pipeline's section: its command, input, kept documents, output, times and rates."""
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
    return lines + render_references(name, p)


def render_references(name: str, p: dict) -> list[str]:
    """SentencePiece encode alone over the kept texts, and the work outside Beam (NL's read, Multi's query)."""
    lines = []
    add = lines.append
    inp, out, tp, e = p["input"], p["output"], p["throughput"], p["encode"]
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
    add(harness.machine_line(m))
    add(f"software  Python {m['python']}, apache-beam {m['apache_beam']}, sentencepiece {m['sentencepiece']}, "
        f"pyarrow {m['pyarrow']}, duckdb {m['duckdb']}, sqlglot {m['sqlglot']}, zstandard {m['zstandard']}; "
        f"sluice {m['sluice_git_commit'][:12]}")
    add(f"runs      FnApiRunner in process, 1 worker, --num_shards {cfg['num_shards']}; scale x{cfg['scale']}; "
        f"{cfg['repeat']} timed run{'s' if cfg['repeat'] > 1 else ''} per pipeline, NL and Multi interleaved")
    if cfg["scale"] > 1:
        add(f"          inputs repeated x{cfg['scale']} under new names (NL: file copies; Multi: repositories and "
            "content ids in every snapshot table): every stage up to exact dedup sees x"
            f"{cfg['scale']}, exact dedup removes the copies (originals kept), later stages see x1")
    lines.extend(harness.load_lines(r["background"], m["nproc"]))
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
    return args


def timed_imports() -> dict:
    """Seconds each pipeline's import takes: paid once by every CLI run, not in the wall times."""
    import_seconds = {}
    t0 = time.perf_counter()
    import pipelines.nl  # noqa: F401 - timed: the import cost every CLI run pays (Beam with it)
    import_seconds["pipelines.nl (with Beam)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    import pipelines.multi  # noqa: F401 - its own imports on top (sqlglot, DuckDB are lazy)
    import_seconds["then pipelines.multi"] = time.perf_counter() - t0
    return import_seconds


def pipeline_commands(args, workdir: str, model: str) -> tuple[dict, dict, dict]:
    """Per pipeline: its argv for an output folder, the flags the report shows, and its (scaled)
    input (NL: the files; Multi: the snapshot folder)."""
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
    return argvs, shown, inputs


def measure(args, argvs: dict, workdir: str, model: str, log) -> tuple[dict, dict, dict]:
    """Steps 2 and 3 of the module's docstring: (warm-up runs, timed runs, encode references)."""
    warm, encoders = {}, {}
    for name in args.pipelines:
        log(f"{name}: warm-up run with --write_documents")
        folder = os.path.join(workdir, f"{name}-warmup")
        warm[name] = run_pipeline(name, [*argvs[name](folder), "--write_documents"])
        texts, _ = harness.read_side_outputs(folder)
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
    return warm, timed, encoders


def reference(name: str, pipeline_input, workdir: str, manifest: dict, log) -> tuple[dict, dict]:
    """(the work outside Beam, the input summary) of one pipeline."""
    if name == "nl":
        log("nl: read stage's own work outside Beam")
        return nl_read_reference(pipeline_input), nl_input_summary(manifest)
    log("multi: DuckDB query alone")
    ref = multi_query_reference(pipeline_input, os.path.join(workdir, "query-alone"), manifest)
    if ref["rows"] != manifest["inputs"]["query"]["rows"]:
        log(f"warning: the query alone returned {ref['rows']} rows, the pipeline's "
            f"{manifest['inputs']['query']['rows']}")
    return ref, multi_input_summary(manifest)


def pipeline_result(name: str, shown: list, warm: dict, timed: list, encoder: EncodeReference,
                    ref: dict, inp: dict, log) -> dict:
    manifest = warm["manifest"]
    out = harness.shard_summary(manifest)
    encode = encoder.summary()
    runs = {"wall_seconds": [t["wall"] for t in timed],
            "cpu_seconds": [t["cpu"] for t in timed],
            "other_cpus": [t["other_cpu"] / t["wall"] for t in timed]}
    if encode["bytes"] != inp["kept_text_bytes"]:
        log(f"warning: {name}: documents/ hold {encode['bytes']} bytes of text, the manifest says "
            f"{inp['kept_text_bytes']} kept")
    return {
        "argv_shown": shown,
        "optional_stages": optional_stages(name, manifest["config"]),
        "input": inp,
        "output": out,
        "funnel": funnel(name, manifest["counts"]),
        "counts": manifest["counts"],
        "warmup_seconds": warm["wall"],
        "runs": runs,
        "encode": encode,
        "throughput": throughput(name, runs, inp, out, encode),
        "reference": ref,
    }


def config_summary(args, command: str) -> dict:
    return {"command": command, "pipelines": args.pipelines, "nl_input": args.nl_input,
            "snapshot": args.snapshot, "scale": args.scale, "repeat": args.repeat,
            "num_shards": args.num_shards, "vocab_size": args.vocab_size,
            "tokenizer": args.tokenizer, "tokenizer_input": args.tokenizer_input,
            "nl_flags": args.nl_flags, "multi_flags": args.multi_flags}


def main(argv=None) -> dict:
    args = parse_args(argv)
    command = harness.command_line(__file__, argv)
    load = harness.MachineLoad()
    import_seconds = timed_imports()
    os.chdir(REPO)
    log = harness.elapsed_logger(load.started)
    with harness.work_folder(args.workdir, "sluice-bench-corpus-", keep=bool(args.workdir or args.keep)) as workdir:
        machine = harness.pipeline_machine_info("duckdb", "sqlglot", "zstandard")
        model, tokenizer_seconds = harness.tokenizer_model(args.tokenizer, args.tokenizer_input, workdir,
                                                           args.vocab_size, log)
        argvs, shown, inputs = pipeline_commands(args, workdir, model)
        warm, timed, encoders = measure(args, argvs, workdir, model, log)
        results = {}
        for name in args.pipelines:
            ref, inp = reference(name, inputs[name], workdir, warm[name]["manifest"], log)
            results[name] = pipeline_result(name, shown[name], warm[name], timed[name], encoders[name],
                                            ref, inp, log)
        report = {
            "machine": machine,
            "config": config_summary(args, command),
            "tokenizer_seconds": tokenizer_seconds,
            "import_seconds": import_seconds,
            "pipelines": results,
        }
        return harness.publish_report(report, render, args.json, load)


if __name__ == "__main__":
    main()
