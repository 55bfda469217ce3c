"""What the bench scripts share, so that they all measure and report the same way.

* paths: importing this module puts the repository on ``sys.path`` and, with bench/, on
  ``PYTHONPATH`` (Beam's multi_processing SDK workers are fresh interpreters that unpickle
  Sluice's DoFns and the bench's own functions). It is the only place that touches either:
  scripts run as ``python bench/NAME.py`` have bench/ as ``sys.path[0]``, so ``import harness``
  comes first and sibling libraries (``dedup_corpus``, ``sluice_dedup``, ...) import as usual;
* the machine: CPUs, model, memory, OS, package versions;
* time: wall and CPU (own and reaped children) of a block, repeated runs and their median, the
  other processes' CPU and the load average over a whole benchmark;
* memory: peak RSS of a process tree, sampled from /proc;
* output: the elapsed-time log, the work folder, the JSON file, number formats;
* data: a synthetic dataset version for the training benchmarks (reader.py, train_throughput.py);
* the references the pipeline benchmarks (mono_pipeline.py, corpus_pipelines.py) compare with:
  tokenizer training, SentencePiece encode alone over the kept texts, the side outputs read back.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator, Optional

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
if REPO not in sys.path:
    sys.path.insert(0, REPO)
if BENCH not in sys.path:  # imported from elsewhere than a bench script (a test)
    sys.path.append(BENCH)
os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(
    [REPO, BENCH, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]))

MB = 1_000_000


def quiet_logging() -> None:
    """Call before Beam is imported: its import-time warnings (apitools, BigQuery) are noise here."""
    logging.getLogger().setLevel(logging.ERROR)


# --------------------------------------------------------------------------------------------
# Machine


def _proc_field(path: str, prefix: str) -> Optional[str]:
    """The rest of the first line of a /proc file that starts with ``prefix``, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line[len(prefix):]
    except OSError:
        pass
    return None


def nproc() -> int:
    """CPUs this process may run on (what ``nproc`` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def machine_info() -> dict:
    """CPUs, CPU model, memory, OS and Python: the same keys in every report."""
    model = _proc_field("/proc/cpuinfo", "model name")
    mem_kb = _proc_field("/proc/meminfo", "MemTotal:")
    return {
        "nproc": nproc(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model.split(":", 1)[1].strip() if model else "unknown",
        "mem_gib": round(int(mem_kb.split()[0]) / (1 << 20), 1) if mem_kb else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions(*distributions: str) -> dict:
    """Installed version of each distribution, "unknown" where it is missing (without importing it)."""
    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "unknown"
    return found


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def pipeline_machine_info(*distributions: str) -> dict:
    """``machine_info()`` with the date, Sluice's commit and the versions its pipelines run on."""
    from pipelines.manifests import git_commit

    found = versions("apache-beam", "sentencepiece", "pyarrow", *distributions)
    return {"date_utc": utc_now(), **machine_info(), **{k.replace("-", "_"): v for k, v in found.items()},
            "sluice_git_commit": git_commit()}


def machine_line(m: dict) -> str:
    return f"machine   {m['nproc']} CPUs (nproc), {m['cpu_model']}, {m['mem_gib']} GiB RAM, {m['platform']}"


# --------------------------------------------------------------------------------------------
# Time and CPU


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (the SDK worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine_cpu() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine so far, from /proc/stat, or nan."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan"), float("nan"), float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq
    return busy / tick, steal / tick, (busy + idle + iowait + steal) / tick


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def median(values):
    return statistics.median(values) if values else None


class Stopwatch:
    """Wall and CPU seconds of a ``with`` block. ``cpu`` counts the children reaped meanwhile
    (Beam's SDK worker processes), ``cpu_self`` this process alone."""

    def __enter__(self):
        self._start = time.perf_counter(), cpu_seconds(), time.process_time()
        return self

    def __exit__(self, *exc):
        wall, cpu, own = self._start
        self.wall = time.perf_counter() - wall
        self.cpu = cpu_seconds() - cpu
        self.cpu_self = time.process_time() - own


def timed_runs(fn: Callable[[], object], repeat: int) -> dict:
    """``fn()`` ``repeat`` times: median wall and CPU (this process) and every run's."""
    walls, cpus = [], []
    for _ in range(repeat):
        with Stopwatch() as watch:
            fn()
        walls.append(watch.wall)
        cpus.append(watch.cpu_self)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus), "walls": walls, "cpus": cpus}


class MachineLoad:
    """What else ran during a benchmark: other processes' CPU and steal (from /proc/stat, less
    this process's own CPU) and the load average, from construction on. A busy machine inflates
    wall times, so every report states it."""

    def __init__(self):
        self.started = time.perf_counter()
        self.loadavg_before = loadavg()
        self.machine_before = machine_cpu()
        self.cpu_before = cpu_seconds()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def background(self) -> dict:
        """The report's "background": wall time so far, other processes' CPU-s, steal, load."""
        wall = self.elapsed()
        busy, steal, _ = machine_cpu()
        other = max(0.0, (busy - self.machine_before[0]) - (cpu_seconds() - self.cpu_before))
        return {"wall_seconds": wall, "other_cpu_seconds": other, "other_cpus": other / wall,
                "steal_seconds": steal - self.machine_before[1],
                "loadavg": [self.loadavg_before, loadavg()]}

    def busy_percent(self) -> tuple[float, float]:
        """(busy %, steal %) of the whole machine's CPU time since construction, all processes."""
        busy, steal, total = machine_cpu()
        span = total - self.machine_before[2]
        if not span:
            return float("nan"), float("nan")
        return 100 * (busy - self.machine_before[0]) / span, 100 * (steal - self.machine_before[1]) / span


def load_lines(b: dict, nproc_: int) -> list[str]:
    """The report's "load" line, and a warning when other processes competed for the CPUs."""
    lines = [f"load      other processes used {b['other_cpu_seconds']:.0f} CPU-s during the bench's "
             f"{b['wall_seconds']:.0f} s ({b['other_cpus']:.2f} of {nproc_} CPUs; steal {b['steal_seconds']:.0f} s); "
             "loadavg " + " -> ".join(b["loadavg"])]
    if b["other_cpus"] > 0.2:
        lines.append("          WARNING: other processes competed for the CPUs; wall times are inflated and noisy. "
                     "Rerun on an idle machine (CPU-time figures are less affected).")
    return lines


# --------------------------------------------------------------------------------------------
# Memory


def proc_status_kb(pid: int) -> dict:
    """VmRSS and VmHWM (peak RSS) of a process, in kB, from /proc/<pid>/status ({} if gone)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return values


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                out += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class TreeSampler:
    """Peak RSS (VmHWM, MB) of a process and of each of its descendants, every ``interval`` s:
    a process's own peak is gone once it exits, so a thread reads it while it runs."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root = root
        self.interval = interval
        self.peak_mb: dict[int, float] = {}
        self.cmd: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        while True:
            todo, seen = [self.root], set()
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                s = proc_status_kb(pid)
                if "VmHWM" in s:
                    self.peak_mb[pid] = max(self.peak_mb.get(pid, 0.0), s["VmHWM"] / 1024)
                    if pid not in self.cmd:
                        self.cmd[pid] = _cmdline(pid)
                todo += _children(pid)
            if self._stop.wait(self.interval):
                return

    def workers(self) -> list[float]:
        """Peaks of the SDK worker interpreters (Beam starts each through ``sh -c``: not the shells)."""
        return [mb for pid, mb in self.peak_mb.items()
                if "sdk_worker_main" in self.cmd.get(pid, "") and not self.cmd[pid].startswith(("/bin/sh", "sh "))]


# --------------------------------------------------------------------------------------------
# Output


def command_line(script: str, argv=None) -> str:
    """How the benchmark was started, for the report's first line."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join([f"python bench/{os.path.basename(script)}", *args])


def elapsed_logger(started: float) -> Callable[[str], None]:
    """A progress log on stderr, each line stamped with the seconds since ``started``."""
    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)
    return log


@contextlib.contextmanager
def work_folder(path: Optional[str], prefix: str, keep: bool) -> Iterator[str]:
    """``path``, or a new temporary folder; removed afterwards unless ``keep``."""
    folder = path or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(folder, exist_ok=True)
    try:
        yield folder
    finally:
        if keep:
            print(f"outputs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def write_json(path, data, sort_keys: bool = False) -> None:
    """Every figure as JSON (``str`` for what JSON has no type for, such as paths)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=sort_keys, default=str)
        f.write("\n")


def publish_report(report: dict, render: Callable[[dict], str], json_path, load: MachineLoad) -> dict:
    """Add the machine's load over the benchmark and its wall time to the report, print it rendered
    and, with --json, save every figure."""
    background = load.background()
    report = {**report, "background": background, "bench_seconds": background["wall_seconds"]}
    print(render(report))
    print(f"\n(bench total {background['wall_seconds']:.0f} s)")
    if json_path:
        write_json(json_path, report, sort_keys=True)
    return report


def fmt_int(n) -> str:
    return f"{n:,}"


def fmt_s(values) -> str:
    return "[" + " ".join(f"{v:.2f}" for v in values) + "]"


# --------------------------------------------------------------------------------------------
# Data


CODEGEN_VOCAB = 51200


def write_synthetic_version(folder: str, shard_rows: list[int], seq_len: int, vocab: int = CODEGEN_VOCAB,
                            batch_rows: int = 1024) -> None:
    """A dataset version of random token ids (seed 0), ``shard_rows[i]`` sequences in shard i,
    published with ``write_version``: figures that do not depend on a demo's small size."""
    import numpy as np

    from schemas import version_writer

    rng = np.random.default_rng(0)
    version_writer.write_version(folder, [{"input_ids": rng.integers(0, vocab, size=(n, seq_len), dtype=np.int32)}
                              for n in shard_rows],
                     dataset="synthetic", tokenizer={"sha256": "none", "vocab_size": vocab}, batch_rows=batch_rows)


# --------------------------------------------------------------------------------------------
# References of the pipeline benchmarks


def train_tokenizer(manifest: str, output: str, vocab_size: int) -> float:
    """Seconds ``pipelines.tokenizer`` takes to train on a Mono manifest (not part of any throughput)."""
    from pipelines import tokenizer

    shutil.rmtree(output, ignore_errors=True)  # versions are immutable: a fresh one each time
    started = time.perf_counter()
    tokenizer.main(["--source", "mono", "--input", manifest, "--output", output,
                    "--vocab_size", str(vocab_size)])
    return time.perf_counter() - started


def tokenizer_model(given: Optional[str], manifest: str, workdir: str, vocab_size: int,
                    log: Callable[[str], None]) -> tuple[str, Optional[float]]:
    """(tokenizer.model, seconds its training took): ``given`` (--tokenizer), else one trained now."""
    if given:
        return os.path.abspath(given), None
    log("training the tokenizer")
    seconds = train_tokenizer(manifest, os.path.join(workdir, "tok"), vocab_size)
    return os.path.join(workdir, "tok", "tokenizer.model"), seconds


def read_side_outputs(folder: str):
    """(kept texts from documents/, ids of repositories dropped before their archive was read)."""
    import pyarrow.parquet as pq

    doc_files = sorted(glob.glob(os.path.join(folder, "documents", "*.parquet")))
    texts = []
    for path in doc_files:
        texts.extend(pq.read_table(path, columns=["text"]).column("text").to_pylist())
    skipped = set()  # repositories dropped before their archive is read
    for path in sorted(glob.glob(os.path.join(folder, "rejects", "*.parquet"))):
        table = pq.read_table(path, columns=["id", "stage"]).to_pydict()
        for record_id, stage in zip(table["id"], table["stage"]):
            if stage in ("manifest", "stars", "license"):
                skipped.add(record_id)
    return texts, skipped


def shard_summary(manifest: dict) -> dict:
    """What a pipeline run published: documents, tokens, sequences, shard bytes."""
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


class EncodeReference:
    """SentencePiece encode of the kept texts, one document per call, single thread: the raw
    ``SentencePieceProcessor.encode`` and Sluice's ``Tokenizer.encode_array`` (what the tokenize
    DoFn calls). One pass of each per timed pipeline run, interleaved with the runs, so that both
    medians see the same machine conditions."""

    def __init__(self, texts: list[str], model_path: str):
        import sentencepiece as spm

        from schemas.tokenizer import Tokenizer

        self.texts = texts
        self.sp = spm.SentencePieceProcessor(model_file=model_path)
        self.wrapper = Tokenizer.from_file(model_path)
        self.raw_seconds, self.wrapper_seconds, self.raw_cpu_seconds = [], [], []
        self.raw_tokens = self.wrapper_tokens = 0

    def one_pass(self):
        cpu, started = time.process_time(), time.perf_counter()
        self.raw_tokens = sum(len(self.sp.encode(text)) for text in self.texts)
        self.raw_seconds.append(time.perf_counter() - started)
        self.raw_cpu_seconds.append(time.process_time() - cpu)
        started = time.perf_counter()
        self.wrapper_tokens = sum(int(self.wrapper.encode_array(text).size) for text in self.texts)
        self.wrapper_seconds.append(time.perf_counter() - started)

    def summary(self) -> dict:
        return {
            "documents": len(self.texts),
            "bytes": sum(len(text.encode("utf-8")) for text in self.texts),
            "raw_tokens": self.raw_tokens,
            "raw_seconds": self.raw_seconds,
            "raw_seconds_median": median(self.raw_seconds),
            "raw_cpu_seconds": self.raw_cpu_seconds,
            "raw_cpu_seconds_median": median(self.raw_cpu_seconds),
            "wrapper_tokens": self.wrapper_tokens,
            "wrapper_seconds": self.wrapper_seconds,
            "wrapper_seconds_median": median(self.wrapper_seconds),
        }
