"""Progress of a local run: per-stage counts, printed every few seconds while the job runs.

Beam's local runner reports metrics only when the job ends, so ``counting.count`` also adds to a
small tally in the worker process, and a daemon thread there prints it to stderr every
``$SLUICE_PROGRESS_S`` seconds when it changed (one line: elapsed time, then each stage's
outcomes). The CLI sets 10 s for local runs; unset or 0 means off (Dataflow shows its counters in
its own UI). With ``--direct_running_mode=multi_processing`` each worker process prints its share.
"""

from __future__ import annotations

import os
import sys
import threading
import time

ENV = "SLUICE_PROGRESS_S"
DEFAULT_INTERVAL_S = "10"


class _Reporter:
    def __init__(self):
        self._lock = threading.Lock()
        self._pid = None
        self._interval = 0.0
        self._tally: dict = {}
        self._started = time.monotonic()
        self._thread = None
        self._generation = 0  # a reset retires the previous thread
        self._last = None

    def _configure(self):
        """Read the interval once per process (a forked worker starts its own tally and thread)."""
        self._pid = os.getpid()
        try:
            self._interval = float(os.environ.get(ENV, "0") or 0)
        except ValueError:
            self._interval = 0.0
        self._tally, self._thread, self._started, self._last = {}, None, time.monotonic(), None
        self._generation += 1

    def reset(self):
        with self._lock:
            self._configure()

    def add(self, stage: str, outcome: str, n: int) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._configure()
        if self._interval <= 0:
            return
        with self._lock:
            per_stage = self._tally.setdefault(stage, {})
            per_stage[outcome] = per_stage.get(outcome, 0) + n
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, args=(self._generation, self._interval),
                                                name="sluice-progress", daemon=True)
                self._thread.start()

    def line(self) -> str:
        with self._lock:
            stages = [(stage, dict(outcomes)) for stage, outcomes in self._tally.items()]
        elapsed = int(time.monotonic() - self._started)
        shown = " | ".join(
            f"{stage} " + " ".join(f"{name}={n:,}" for name, n in sorted(outcomes.items()))
            for stage, outcomes in stages)
        return f"progress {elapsed // 60}:{elapsed % 60:02d} [pid {os.getpid()}] {shown}"

    def print_if_changed(self) -> None:
        """Print the current line unless it was the last one printed (also at the end of a run)."""
        if self._interval <= 0 or self._pid != os.getpid():
            return
        text = self.line()
        counts = text.split("] ", 1)[1]
        with self._lock:
            if not counts or counts == self._last:
                return
            self._last = counts
        print(text, file=sys.stderr, flush=True)

    def _loop(self, generation: int, interval: float):
        while True:
            time.sleep(interval)
            if self._pid != os.getpid() or self._generation != generation:
                return
            self.print_if_changed()


REPORTER = _Reporter()
