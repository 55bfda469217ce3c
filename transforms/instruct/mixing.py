"""Per-task caps and FLAN's examples-proportional mixing, chosen by hash rank, never by a global sort.

Every training example has a key, ``(hash(seed, task, id), id)``. ``--max_examples_per_task`` keeps
each task's smallest keys: a combiner (``Top.SmallestPerKey``) holds at most that many keys per task,
so no worker sees a task's full data. From the per-task counts (one small number per task, a side
input) each split's plan follows (``mixture_plan``: the arithmetic, no Beam); an example then gets
``copies`` copies, plus one when its key is among its task's ``extra`` smallest. Realised
proportions are counted by a combiner and land in the manifest.
"""

from __future__ import annotations

from typing import Optional

import apache_beam as beam

from schemas.instruct_example import RenderedExample
from transforms.instruct.render import stable_hash
from transforms.stats.counting import count

CAP_STAGE = "instruct_cap"


def selection_key(seed: int, task: str, example_id: str) -> int:
    """Rank of an example in its task: the caps keep the smallest keys."""
    return stable_hash(seed, "select", task, example_id)


def keyed(example: RenderedExample, seed: int):
    return example.task, (selection_key(seed, example.task, example.id), example.id)


def apportion(total: int, weights: dict) -> dict:
    """``total`` split in proportion to ``weights`` by largest remainder (ties by name): exact, and
    the parts add up to ``total``."""
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        return {name: 0 for name in weights}
    quotas = {name: total * w / weight_sum for name, w in weights.items()}
    parts = {name: int(q) for name, q in quotas.items()}
    left = total - sum(parts.values())
    for name in sorted(weights, key=lambda n: (-(quotas[n] - parts[n]), n))[:left]:
        parts[name] += 1
    return parts


def mixture_plan(available: dict, mixing_cap: int, size: Optional[int] = None) -> dict:
    """Examples-proportional mixing with a cap (FLAN): rate_t = min(n_t, cap) / sum_j min(n_j, cap).

    ``available`` is each task's example count after ``--max_examples_per_task``. The mixture holds
    ``size`` examples (default: sum_j min(n_j, cap), so each task gives min(n_t, cap) and none
    repeats); task t gets its rate's share of them (largest remainder). A task asked for more than
    it has repeats all its examples, the lowest-keyed ones once more for the remainder.
    """
    weights = {t: min(n, mixing_cap) for t, n in available.items()}
    total = sum(weights.values()) if size is None else size
    examples = apportion(total, weights)
    weight_sum = sum(weights.values())
    plan = {}
    for t, n in sorted(available.items()):
        c = examples[t]
        plan[t] = {"available": n, "rate": weights[t] / weight_sum if weight_sum else 0.0,
                   "examples": c, "copies": c // n if n else 0, "extra": c % n if n else 0}
    return plan


class SmallestKeys(beam.PTransform):
    """Training examples -> ``(task, [its min(n, cap) smallest keys, ascending])``."""

    def __init__(self, seed: int, max_examples_per_task: int):
        super().__init__()
        self._seed = seed
        self._cap = max_examples_per_task

    def expand(self, examples):
        return (examples
                | "Key" >> beam.Map(keyed, self._seed)
                | "Smallest" >> beam.combiners.Top.SmallestPerKey(self._cap))


def _cap_threshold(item, cap):
    task, keys = item
    return task, (tuple(keys[-1]) if len(keys) >= cap else None)


def _within_cap(example, thresholds, seed):
    task, key = keyed(example, seed)
    threshold = thresholds.get(task)
    if threshold is None or key <= threshold:
        count(CAP_STAGE, "kept")
        return True
    count(CAP_STAGE, "over_max_examples_per_task")
    return False


class CapPerTask(beam.PTransform):
    """Training examples -> (the examples within ``max_examples_per_task``, per-task smallest keys)."""

    def __init__(self, seed: int, max_examples_per_task: int):
        super().__init__()
        self._seed = seed
        self._cap = max_examples_per_task

    def expand(self, examples):
        smallest = examples | "SmallestKeys" >> SmallestKeys(self._seed, self._cap)
        thresholds = smallest | "CapThreshold" >> beam.Map(_cap_threshold, self._cap)
        capped = examples | "WithinCap" >> beam.Filter(
            _within_cap, beam.pvalue.AsDict(thresholds), self._seed)
        return capped, smallest


def _plan(_, available, tasks, mixing_cap, size):
    return mixture_plan({t: available.get(t, 0) for t in tasks}, mixing_cap, size)


def _selection(item, plan):
    """(task, (copies, key below which an example gets one more copy, or None))."""
    task, keys = item
    if task not in plan:
        return []
    entry = plan[task]
    extra_below = tuple(keys[entry["extra"] - 1]) if entry["extra"] else None
    return [(task, (entry["copies"], extra_below))]


def _copies(example, selection, seed):
    task, key = keyed(example, seed)
    if task not in selection:
        return
    copies, extra_below = selection[task]
    n = copies + (1 if extra_below is not None and key <= extra_below else 0)
    for copy in range(n):
        yield example if copy == 0 else _copy(example, copy)


def _copy(example, copy):
    import dataclasses

    return dataclasses.replace(example, id=f"{example.id}#{copy}")


class MixSplit(beam.PTransform):
    """Capped training examples of every task -> one split's mixture (copies included), and its plan.

    ``smallest`` is CapPerTask's per-task key lists: their lengths are the tasks' available counts.
    """

    def __init__(self, tasks: tuple, smallest, seed: int, mixing_cap: int, size=None):
        super().__init__()
        self._tasks = tuple(tasks)
        self._smallest = smallest
        self._seed = seed
        self._mixing_cap = mixing_cap
        self._size = size

    def expand(self, examples):
        available = self._smallest | "Available" >> beam.Map(lambda item: (item[0], len(item[1])))
        plan = (examples.pipeline
                | "One" >> beam.Create([None])
                | "Plan" >> beam.Map(_plan, beam.pvalue.AsDict(available), self._tasks,
                                     self._mixing_cap, self._size))
        selection = self._smallest | "Selection" >> beam.FlatMap(_selection, beam.pvalue.AsSingleton(plan))
        mixture = examples | "Copies" >> beam.FlatMap(_copies, beam.pvalue.AsDict(selection), self._seed)
        return mixture, plan
