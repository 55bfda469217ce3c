"""Run statistics: the archive fingerprint is independent of order and partitioning, and
matches a direct computation over the real sample archives; JSON files round-trip."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from transforms.stats.run_stats import ArchiveFingerprintFn, WriteJson, read_json

ARCHIVES = Path(__file__).resolve().parents[3] / "samples" / "mono" / "archives"


@pytest.fixture(scope="module")
def archives():
    """(repo, sha256, bytes, status) of every real sample archive, plus failed ones."""
    out = []
    for path in sorted(ARCHIVES.glob("*.tar.gz")):
        data = path.read_bytes()
        out.append((path.name.removesuffix(".tar.gz"), hashlib.sha256(data).hexdigest(), len(data),
                    "complete"))
    out.append(("broken/one", hashlib.sha256(b"half").hexdigest(), 4, "archive_corrupt"))
    out.append(("gone/two", hashlib.sha256(b"").hexdigest(), 0, "archive_unreadable"))
    return out


def _expected(archives):
    total = sum(int.from_bytes(hashlib.sha256(f"{r}\x00{d}".encode()).digest(), "big")
                for r, d, _, _ in archives) % (1 << 256)
    statuses = {}
    for *_, status in archives:
        statuses[status] = statuses.get(status, 0) + 1
    return {"archives": len(archives), "compressed_bytes": sum(a[2] for a in archives),
            "fingerprint": f"{total:064x}", "status": dict(sorted(statuses.items()))}


def _combine(fn, partitions):
    accumulators = []
    for part in partitions:
        acc = fn.create_accumulator()
        for item in part:
            acc = fn.add_input(acc, item)
        accumulators.append(acc)
    return fn.extract_output(fn.merge_accumulators(accumulators))


def test_fingerprint_order_and_partition_independent(archives):
    fn = ArchiveFingerprintFn()
    expected = _expected(archives)
    assert expected["compressed_bytes"] == sum(p.stat().st_size for p in ARCHIVES.glob("*.tar.gz")) + 4
    assert _combine(fn, [archives]) == expected
    rng = random.Random(0)
    for _ in range(20):
        items = archives[:]
        rng.shuffle(items)
        cuts = sorted(rng.sample(range(len(items) + 1), rng.randint(0, 5)))
        parts = [items[a:b] for a, b in zip([0] + cuts, cuts + [len(items)])]
        assert _combine(fn, parts) == expected
        # Merges of merges: the partitions' accumulators combined pairwise in a random tree.
        accs = [fn.create_accumulator() for _ in parts]
        for i, part in enumerate(parts):
            for item in part:
                accs[i] = fn.add_input(accs[i], item)
        while len(accs) > 1:
            a, b = sorted(rng.sample(range(len(accs)), 2))
            merged = fn.merge_accumulators([accs[b], accs[a]])
            accs = [x for i, x in enumerate(accs) if i not in (a, b)] + [merged]
        assert fn.extract_output(accs[0]) == expected
    # Empty partitions and a nested merge.
    left = _combine(fn, [archives[:5], []])
    acc_a = fn.add_input(fn.create_accumulator(), archives[5])
    acc_b = fn.merge_accumulators([fn.create_accumulator(), acc_a])
    nested = fn.merge_accumulators([fn.merge_accumulators([acc_b]), fn.create_accumulator()])
    assert fn.extract_output(nested) == _expected(archives[5:6])
    assert left == _expected(archives[:5])


def test_fingerprint_changes_with_any_archive(archives):
    fn = ArchiveFingerprintFn()
    base = _combine(fn, [archives])["fingerprint"]
    repo, digest, size, status = archives[3]
    changed = archives[:3] + [(repo, hashlib.sha256(b"other").hexdigest(), size, status)] + archives[4:]
    assert _combine(fn, [changed])["fingerprint"] != base
    renamed = archives[:3] + [(repo + "x", digest, size, status)] + archives[4:]
    assert _combine(fn, [renamed])["fingerprint"] != base
    assert _combine(fn, [archives[1:]])["fingerprint"] != base
    empty = fn.extract_output(fn.create_accumulator())
    assert empty == {"archives": 0, "compressed_bytes": 0, "fingerprint": "0" * 64, "status": {}}


def test_add_input_does_not_mutate_accumulators(archives):
    fn = ArchiveFingerprintFn()
    acc = fn.add_input(fn.create_accumulator(), archives[0])
    snapshot = (acc[0], acc[1], acc[2], dict(acc[3]))
    fn.add_input(acc, archives[1])
    fn.merge_accumulators([acc, acc])
    assert (acc[0], acc[1], acc[2], dict(acc[3])) == snapshot


def test_fingerprint_in_pipeline_and_json_round_trip(archives, tmp_path, beam_helpers):
    new_pipeline, run, _ = beam_helpers
    path = str(tmp_path / "archives.json")
    p = new_pipeline()
    combined = (p | beam.Create(list(reversed(archives)))
                | beam.CombineGlobally(ArchiveFingerprintFn()))
    assert_that(combined, equal_to([_expected(archives)]))
    combined | WriteJson(path)
    run(p)
    assert read_json(path) == _expected(archives)
