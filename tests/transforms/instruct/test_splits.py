"""A split's counters: plain stage names for a one-split version, ``stage@split`` with --all_holdouts,
so each split's manifest counts its own shards (``split_counts`` reads them back)."""

from __future__ import annotations

import dataclasses

from schemas.instruct import Split
from transforms.instruct.splits import StreamSettings, WriteSplit, split_counts
from transforms.instruct.streams import EVAL_STAGE, PACK_STAGE

SETTINGS = StreamSettings(seq_len=64, num_shards=1, eval_shards=1, seed=0, mixing_cap=10, mixture_size=None,
                          eot_id=2, pad_id=0, write_examples=False, per_split_stages=False)


def split(name: str) -> Split:
    return Split(name=name, holdouts=(name.removeprefix("holdout-"),), excluded_clusters=(), train_tasks=("a",),
                 eval_tasks=("b",))


def test_stage_names_per_split_only_with_all_holdouts():
    one = WriteSplit(split("holdout-nli"), "/out", "/out/_run", None, SETTINGS)
    assert (one.stage(PACK_STAGE), one.stage(EVAL_STAGE)) == (PACK_STAGE, EVAL_STAGE)
    every = WriteSplit(split("holdout-nli"), "/out/holdout-nli", "/out/holdout-nli/_run", None,
                       dataclasses.replace(SETTINGS, per_split_stages=True))
    assert every.stage(PACK_STAGE) == f"{PACK_STAGE}@holdout-nli"
    assert every.stats_path("shards.json") == "/out/holdout-nli/_run/shards.json"


def test_a_splits_counts_are_the_shared_stages_and_its_own():
    counts = {"read": {"kept": 9}, f"{PACK_STAGE}@holdout-nli": {"sequences": 3},
              f"{PACK_STAGE}@holdout-qa": {"sequences": 5}}
    assert split_counts(counts, "holdout-nli") == {PACK_STAGE: {"sequences": 3}, "read": {"kept": 9}}
