"""Global shuffle: keys computed from (seed, id) alone, the same in every process; every shard
present, documents in key order inside a shard, none lost or duplicated."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import TokenizedDocument
from transforms.streams.shuffle import GroupIntoShuffledShards, shuffle_key

ROOT = Path(__file__).resolve().parents[3]
IDS = ["psf/requests:src/requests/api.py", "a/b:x.py", "", "ünïcode/repo:файл.py", "a/b:x.py "]


def _reference_key(seed: int, doc_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def test_shuffle_key_is_blake2b_of_seed_and_id():
    for seed in (0, 1, 12345):
        for doc_id in IDS:
            key = shuffle_key(seed, doc_id)
            assert key == _reference_key(seed, doc_id)
            assert 0 <= key < 2**64
    assert len({shuffle_key(0, i) for i in IDS}) == len(IDS)
    assert shuffle_key(0, "a/b:x.py") != shuffle_key(1, "a/b:x.py")
    # Seed and id cannot be shifted into each other.
    assert shuffle_key(1, "2:x") != shuffle_key(12, ":x")


def test_shuffle_key_is_stable_across_processes():
    # Python's own str hash differs per process (PYTHONHASHSEED); the shuffle key must not.
    code = ("import sys, json; from transforms.streams.shuffle import shuffle_key; ids = json.loads(sys.argv[1]); "
            "print(json.dumps([[shuffle_key(7, i) for i in ids], hash(ids[0])]))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(IDS)], cwd=ROOT, check=True,
                         env=dict(os.environ, PYTHONHASHSEED="4242", PYTHONPATH=str(ROOT)),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60)
    keys, other_hash = json.loads(out.stdout)
    if os.environ.get("PYTHONHASHSEED") != "4242":
        assert other_hash != hash(IDS[0])  # the two processes really do hash strings differently
    expected = [_reference_key(7, i) for i in IDS]
    assert keys == expected
    assert [shuffle_key(7, i) for i in IDS] == expected


def _tokens(i: int) -> bytes:
    return np.arange(i, i + 1 + i % 5, dtype="<i4").tobytes()


def _expected_shards(docs, num_shards, seed):
    shards = {i: [] for i in range(num_shards)}
    for doc in docs:
        key = _reference_key(seed, doc.id)
        shards[key % num_shards].append((key, doc.id, doc.tokens))
    return [(i, sorted(v)) for i, v in shards.items()]


def test_group_into_shuffled_shards(beam_helpers):
    new_pipeline, run, _ = beam_helpers
    docs = [TokenizedDocument(id=f"repo/{i % 4}:file{i}.py", tokens=_tokens(i)) for i in range(40)]
    few = _expected_shards(docs, 3, seed=42)
    many = _expected_shards(docs[:6], 64, seed=42)
    assert all(entries for _, entries in few)
    assert sum(1 for _, entries in many if not entries) >= 58  # most of the 64 shards are empty
    other_seed = _expected_shards(docs, 3, seed=43)
    assert [e[1] for _, s in other_seed for e in s] != [e[1] for _, s in few for e in s]

    p = new_pipeline()
    pdocs = p | beam.Create(docs)
    assert_that(pdocs | "Few" >> GroupIntoShuffledShards(3, seed=42), equal_to(few), label="few")
    assert_that(p | "Six" >> beam.Create(docs[:6]) | "Many" >> GroupIntoShuffledShards(64, seed=42),
                equal_to(many), label="many")
    assert_that(pdocs | "Seed43" >> GroupIntoShuffledShards(3, seed=43), equal_to(other_seed),
                label="seed43")
    run(p)


def test_shard_contents_in_key_order_and_complete(beam_helpers):
    new_pipeline, run, _ = beam_helpers
    docs = [TokenizedDocument(id=f"r:{i}", tokens=_tokens(i)) for i in range(25)]

    def check(shards):
        shards = sorted(shards)
        assert [s for s, _ in shards] == list(range(5))
        seen = []
        for index, entries in shards:
            keys = [k for k, _, _ in entries]
            assert keys == sorted(keys)
            assert all(k % 5 == index for k in keys)
            seen += [(doc_id, tokens) for _, doc_id, tokens in entries]
        assert sorted(seen) == sorted((d.id, d.tokens) for d in docs)

    p = new_pipeline()
    shards = p | beam.Create(docs) | GroupIntoShuffledShards(5, seed=0)
    assert_that(shards, check)
    run(p)


def test_empty_input_still_gives_every_shard(beam_helpers):
    new_pipeline, run, _ = beam_helpers
    p = new_pipeline()
    shards = p | beam.Create([], reshuffle=False).with_output_types(TokenizedDocument) \
        | GroupIntoShuffledShards(4, seed=1)
    assert_that(shards, equal_to([(i, []) for i in range(4)]))
    run(p)
