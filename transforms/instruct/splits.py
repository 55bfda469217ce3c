"""One leave-one-cluster-out split of an instruction mixture, written as a complete dataset.

A split mixes its training tasks (capped examples-proportional), writes the packed streams and the
held-out tasks' evaluation set into its folder, and hands the driver its plan, realised mixture and
shard statistics in the run's statistics folder the driver names. With ``--all_holdouts`` one job writes every split,
each through one ``WriteSplit``.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from schemas.instruct import Split
from transforms.instruct.mixing import MixSplit
from transforms.instruct.streams import EVAL_STAGE, PACK_STAGE, WriteEvalSet, WriteMixture
from transforms.stats.run_stats import WriteJson
from transforms.stats.side_outputs import WriteExamples

# With --all_holdouts one job writes every split's streams. Their counters carry the split's name
# (``pack@holdout-nli``), so a split's manifest counts its own shards plus the shared stages
# (reading, rendering, capping, tokenizing), and the index manifest counts the whole job.
SPLIT_STAGE = "{stage}@{split}"


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """How every split's streams are written (the stream and instruct flags)."""

    seq_len: int
    num_shards: int
    eval_shards: int
    seed: int
    mixing_cap: int
    mixture_size: int | None
    eot_id: int
    pad_id: int
    write_examples: bool
    per_split_stages: bool  # --all_holdouts: counters named per split (SPLIT_STAGE)


def split_counts(counts: dict, split_name: str) -> dict:
    """A split's view of the job's counts: the shared stages, and its own (``stage@split``) under
    their plain names."""
    own = {}
    for stage, values in counts.items():
        base, marker, name = stage.partition("@")
        if not marker:
            own.setdefault(stage, values)
        elif name == split_name:
            own[base] = values
    return dict(sorted(own.items()))


def _in_tasks(tokenized, tasks):
    return tokenized.task in tasks


def _task_of(tokenized):
    return tokenized.task, 1


def _sorted_dict(pairs):
    return dict(sorted(pairs))


class WriteSplit(beam.PTransform):
    """``{"train": tokenized training examples, "eval": tokenized evaluation examples}`` -> the
    split's streams and evaluation set under ``folder``, its statistics under ``stats_dir``."""

    def __init__(self, split: Split, folder: str, stats_dir: str, smallest, settings: StreamSettings):
        super().__init__()
        self._split = split
        self._folder = folder.rstrip("/")
        self._stats_dir = stats_dir.rstrip("/")
        self._smallest = smallest
        self._settings = settings

    def stage(self, stage: str) -> str:
        if self._settings.per_split_stages:
            return SPLIT_STAGE.format(stage=stage, split=self._split.name)
        return stage

    def stats_path(self, name: str) -> str:
        return f"{self._stats_dir}/{name}"

    def expand(self, inputs):
        s, split = self._settings, self._split
        mixture, plan = inputs["train"] | "Mix" >> MixSplit(
            split.train_tasks, self._smallest, s.seed, s.mixing_cap, s.mixture_size)
        plan | "WritePlan" >> WriteJson(self.stats_path("plan.json"))
        (mixture | "TaskOf" >> beam.Map(_task_of)
         | "PerTask" >> beam.CombinePerKey(sum)
         | "AllTasks" >> beam.combiners.ToList()
         | "Sorted" >> beam.Map(_sorted_dict)
         | "WriteRealised" >> WriteJson(self.stats_path("realised.json")))
        mixture | "Write" >> WriteMixture(
            self._folder, seq_len=s.seq_len, num_shards=s.num_shards, seed=s.seed, eot_id=s.eot_id,
            pad_id=s.pad_id, stats_path=self.stats_path("shards.json"), stage=self.stage(PACK_STAGE))
        audit = [mixture]
        if split.eval_tasks:
            eval_set = inputs["eval"] | "EvalTasks" >> beam.Filter(_in_tasks, set(split.eval_tasks))
            eval_set | "WriteEval" >> WriteEvalSet(
                f"{self._folder}/eval", num_shards=s.eval_shards, seed=s.seed,
                stats_path=self.stats_path("eval.json"), stage=self.stage(EVAL_STAGE))
            audit.append(eval_set)
        if s.write_examples:
            audit | "Audit" >> beam.Flatten() | "WriteExamples" >> WriteExamples(self._folder)
        return mixture
