"""Caps and capped examples-proportional mixing: the mixing rule's arithmetic, and in Beam exact
counts, lowest hash keys, copies."""

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from schemas.instruct_example import RenderedExample
from transforms.instruct.mixing import CapPerTask, MixSplit, apportion, mixture_plan, selection_key

SEED = 5
SIZES = {"a": 50, "b": 20, "c": 5}


def test_mixing_follows_the_capped_rule_exactly():
    available = {"big": 5000, "mid": 1000, "small": 200}
    plan = mixture_plan(available, mixing_cap=3000)
    assert {t: e["rate"] for t, e in plan.items()} == {"big": 3000 / 4200, "mid": 1000 / 4200, "small": 200 / 4200}
    assert {t: e["examples"] for t, e in plan.items()} == {"big": 3000, "mid": 1000, "small": 200}
    assert all(e["copies"] in (0, 1) for e in plan.values())
    # A larger mixture keeps the rates: small tasks repeat, the lowest keys once more.
    plan = mixture_plan(available, mixing_cap=3000, size=8401)
    examples = {t: e["examples"] for t, e in plan.items()}
    assert sum(examples.values()) == 8401
    assert examples == {"big": 6001, "mid": 2000, "small": 400}  # 6000.71.., 2000.24.., 400.05..
    assert (plan["big"]["copies"], plan["big"]["extra"]) == (1, 1001)
    assert (plan["small"]["copies"], plan["small"]["extra"]) == (2, 0)


def test_apportion_is_exact_and_ties_break_by_name():
    assert apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert apportion(0, {"a": 1}) == {"a": 0}
    assert apportion(5, {"a": 0}) == {"a": 0}


def examples():
    return [RenderedExample(task=t, cluster="x", split="train", id=f"{t}/{i}", template=0,
                            inverse=False, input=f"in {i}", target=f"out {i}")
            for t, n in SIZES.items() for i in range(n)]


def lowest(task, n):
    ids = [f"{task}/{i}" for i in range(SIZES[task])]
    return sorted(ids, key=lambda i: (selection_key(SEED, task, i), i))[:n]


def check(max_per_task, cap, size, expected_ids, expected_plan, tasks=("a", "b", "c")):
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        capped, smallest = pipeline | beam.Create(examples()) | CapPerTask(SEED, max_per_task)
        mixture, plan = capped | MixSplit(tasks, smallest, SEED, cap, size)
        assert_that(mixture | "Ids" >> beam.Map(lambda e: e.id), equal_to(expected_ids), label="ids")
        assert_that(plan | "Examples" >> beam.Map(lambda p: {t: e["examples"] for t, e in p.items()}),
                    equal_to([expected_plan]), label="plan")


def test_caps_keep_the_lowest_keys_and_rates_follow_the_cap():
    # max 30 per task: a keeps 30 of 50; cap 10: rates 10/25, 10/25, 5/25 -> 10, 10, 5 examples.
    a = lowest("a", 10)
    assert set(a) <= set(lowest("a", 30))
    check(30, 10, None, a + lowest("b", 10) + lowest("c", 5), {"a": 10, "b": 10, "c": 5})


def test_a_larger_mixture_repeats_small_tasks():
    # size 50 at rates 10/25, 10/25, 5/25: 20, 20, 10; c has 5 examples: each twice.
    c_twice = lowest("c", 5) + [f"{i}#1" for i in lowest("c", 5)]
    check(30, 10, 50, lowest("a", 20) + lowest("b", 20) + c_twice, {"a": 20, "b": 20, "c": 10})


def test_a_split_without_a_task_drops_it():
    check(30, 10, None, lowest("a", 10) + lowest("c", 5), {"a": 10, "c": 5}, tasks=("a", "c"))
