"""A finished job's counters read back: Sluice's per-stage counts and its histograms.

Every stage counts its outcomes as Beam Metrics (``transforms/stats/counting.py``); a driver reads
them from the job it ran, or, in a template's finalize step, from the finished Dataflow job.
"""

from __future__ import annotations

from apache_beam.metrics.metric import MetricsFilter

from pipelines.driver import UsageError
from transforms.stats import histograms
from transforms.stats.counting import NAMESPACE_PREFIX


def _counter_values(result, prefix: str) -> dict:
    """``{(namespace without prefix, name): value}`` summed over steps (committed where known)."""
    values: dict = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        namespace = counter.key.metric.namespace
        if not namespace.startswith(prefix):
            continue
        key = (namespace[len(prefix):], counter.key.metric.name)
        value = counter.committed if counter.committed is not None else counter.attempted
        values[key] = values.get(key, 0) + value
    return values


def counts_from_metrics(result) -> dict:
    """``{stage: {outcome: n}}`` from the job's ``sluice.*`` counters."""
    counts: dict = {}
    for (stage, outcome), value in _counter_values(result, NAMESPACE_PREFIX).items():
        counts.setdefault(stage, {})[outcome] = value
    return {stage: dict(sorted(v.items())) for stage, v in sorted(counts.items())}


def histograms_from_metrics(result) -> dict:
    """The job's ``sluice_hist.*`` bucket counters as ``{name: [{min, max, count}]}``."""
    return histograms.from_counters(_counter_values(result, histograms.NAMESPACE_PREFIX))


class FinishedJob:
    """A finished Dataflow job (finalize mode): its state checked, its counters from the Dataflow API."""

    def __init__(self, options, job_id: str):
        from apache_beam.runners.dataflow.dataflow_metrics import DataflowMetrics
        from apache_beam.runners.dataflow.internal import apiclient

        class _Metrics(DataflowMetrics):
            def _translate_step_name(self, internal_name):
                return internal_name  # counts are summed over steps: their names are not needed

        client = apiclient.DataflowApplicationClient(options)
        state = str(client.get_job(job_id).currentState).rsplit(".", 1)[-1]
        if state != "JOB_STATE_DONE":
            raise UsageError(f"--dataflow_job_id: job {job_id} is {state}; nothing was published")
        self._job_id = job_id
        self._metrics = _Metrics(client, self)

    def job_id(self) -> str:
        return self._job_id

    def is_in_terminal_state(self) -> bool:
        return True

    def metrics(self):
        return self._metrics
