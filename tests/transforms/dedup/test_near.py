"""Near-dedup on real files: known near-duplicates removed, distinct files kept, rank honoured."""

from __future__ import annotations

import hashlib
import pathlib

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Document
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.dedup.minhash import MinHasher, estimated_jaccard, shingle_hashes
from transforms.dedup.near import NearDedup, NearDedupConfig

ARCHIVES = pathlib.Path(__file__).resolve().parents[3] / "samples" / "mono" / "archives"


@pytest.fixture(scope="module")
def real_files():
    files = {}
    for archive in sorted(ARCHIVES.glob("*.tar.gz"))[:12]:
        for member in iter_members(str(archive), ArchiveLimits()):
            if member.data is not None and member.path.endswith(".py") and len(member.data) > 3000:
                files[f"{archive.name}:{member.path}"] = member.data.decode("utf-8")
    return files


def doc(doc_id, text, stars=0, language="python"):
    return Document(id=doc_id, repo_name=doc_id.split(":")[0], path=doc_id, text=text,
                    sha256=hashlib.sha256(text.encode()).hexdigest(), stars=stars, license="MIT",
                    license_source="manifest", license_confidence=1.0, ref=None, language=language)


def run_dedup(docs, config=NearDedupConfig(), expect_kept=None, expect_rejects=None):
    pipeline = beam.Pipeline(runner="FnApiRunner")
    kept, rejects = pipeline | beam.Create(docs) | NearDedup(config)
    if expect_kept is not None:
        assert_that(kept | "KeptIds" >> beam.Map(lambda d: d.id), equal_to(sorted(expect_kept)),
                    label="Kept")
    if expect_rejects is not None:
        assert_that(rejects | "RejectPairs" >> beam.Map(lambda r: (r.id, r.reason, r.detail)),
                    equal_to(sorted(expect_rejects)), label="Rejects")
    result = pipeline.run()
    result.wait_until_finish()
    return {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
            if c.key.metric.namespace == "sluice.near_dedup"}


def edited(text):
    """A light edit of a real file: a comment added and one line changed, as between versions."""
    lines = text.splitlines()
    lines[len(lines) // 2] = lines[len(lines) // 2] + "  # patched in 1.0.1"
    return "# vendored copy\n" + "\n".join(lines) + "\n"


def test_edited_copies_are_removed_and_distinct_files_kept(real_files):
    names = sorted(real_files)[:12]
    docs = [doc(f"orig/{i}:{n}", real_files[n]) for i, n in enumerate(names)]
    docs += [doc(f"fork/{i}:{n}", edited(real_files[n])) for i, n in enumerate(names[:5])]
    expect_rejects = [(f"orig/{i}:{n}", "near_duplicate", f"fork/{i}:{n}") for i, n in enumerate(names[:5])]
    kept = [d.id for d in docs if d.id not in {r[0] for r in expect_rejects}]
    counts = run_dedup(docs, expect_kept=kept, expect_rejects=expect_rejects)
    assert counts["components"] == 5 and counts["near_duplicate"] == 5


def test_stars_decide_which_copy_is_kept(real_files):
    name = sorted(real_files)[0]
    docs = [doc("a/small:x.py", real_files[name], stars=10),
            doc("z/popular:x.py", edited(real_files[name]), stars=5000)]
    run_dedup(docs, expect_kept=["z/popular:x.py"],
              expect_rejects=[("a/small:x.py", "near_duplicate", "z/popular:x.py")])


def test_a_chain_of_similar_files_is_one_component(real_files):
    lines = max(real_files.values(), key=len).splitlines()
    assert len(lines) > 400
    a, b, c = ("\n".join(lines[k:k + 300]) for k in (0, 25, 50))
    hasher = MinHasher()
    sig = {k: hasher.signature(shingle_hashes(t)) for k, t in (("a", a), ("b", b), ("c", c))}
    assert estimated_jaccard(sig["a"], sig["b"]) >= 0.8 and estimated_jaccard(sig["b"], sig["c"]) >= 0.8
    assert estimated_jaccard(sig["a"], sig["c"]) < 0.8  # A and C are not similar themselves
    docs = [doc("r:a.py", a), doc("r:b.py", b), doc("r:c.py", c)]
    counts = run_dedup(docs, expect_kept=["r:a.py"],
                       expect_rejects=[("r:b.py", "near_duplicate", "r:a.py"),
                                       ("r:c.py", "near_duplicate", "r:a.py")])
    assert counts["components"] == 1


def test_a_large_boilerplate_bucket_stays_linear(real_files):
    base = sorted(real_files.values(), key=len)[len(real_files) // 2]
    n = 300
    docs = [doc(f"copy/{i:04d}:setup.py", base + f"\n# build {i}\n") for i in range(n)]
    config = NearDedupConfig()
    bands, _ = config.bands_rows()
    counts = run_dedup(docs, config, expect_kept=["copy/0000:setup.py"])
    assert counts["near_duplicate"] == n - 1 and counts["components"] == 1
    assert counts["lsh_bucket_members"] <= bands * n
    assert counts["verified_edges"] <= bands * (n - 1)  # star edges: linear, never n*(n-1)/2


def test_verification_drops_lsh_false_positives(real_files):
    """A pair below the threshold that LSH still buckets together is kept when verified."""
    lines = max(real_files.values(), key=len).splitlines()
    hasher, config = MinHasher(), NearDedupConfig()
    bands, rows = config.bands_rows()
    base = "\n".join(lines[:200])
    sig_a = hasher.signature(shingle_hashes(base))
    for shift in range(1, 120):
        other = "\n".join(lines[shift:200 + shift])
        sig_b = hasher.signature(shingle_hashes(other))
        shares_band = any(np.array_equal(sig_a[i * rows:(i + 1) * rows], sig_b[i * rows:(i + 1) * rows])
                          for i in range(bands))
        if shares_band and estimated_jaccard(sig_a, sig_b) < config.threshold:
            break
    else:
        pytest.fail("no LSH false positive among the shifted windows")
    docs = [doc("r:a.py", base), doc("r:b.py", other)]
    verified = run_dedup(docs, config, expect_kept=["r:a.py", "r:b.py"], expect_rejects=[])
    assert verified["rejected_candidate_edges"] >= 1
    unverified = NearDedupConfig(verify="none")
    run_dedup(docs, unverified, expect_kept=["r:a.py"],
              expect_rejects=[("r:b.py", "near_duplicate", "r:a.py")])


def test_cross_source_removes_only_from_the_lower_priority_corpus(real_files):
    names = sorted(real_files)[:4]
    multi = [doc(f"m/{i}:{n}", real_files[n]) for i, n in enumerate(names)]
    multi.append(doc("m/dup:x.py", edited(real_files[names[0]])))  # a duplicate inside the protected corpus
    mono = [doc(f"p/{i}:{n}", edited(real_files[n])) for i, n in enumerate(names[:2])]
    mono.append(doc("p/own:y.py", real_files[sorted(real_files)[7]]))
    pipeline = beam.Pipeline(runner="FnApiRunner")
    kept, rejects = {
        "multi": pipeline | "Multi" >> beam.Create(multi),
        "mono": pipeline | "Mono" >> beam.Create(mono),
    } | NearDedup(NearDedupConfig(), protected=("multi",))
    assert_that(kept["multi"] | "MultiIds" >> beam.Map(lambda d: d.id),
                equal_to(sorted(d.id for d in multi)), label="MultiKept")
    assert_that(kept["mono"] | "MonoIds" >> beam.Map(lambda d: d.id), equal_to(["p/own:y.py"]),
                label="MonoKept")
    assert_that(rejects | beam.Map(lambda r: (r.id, r.detail)),
                equal_to([("p/0:" + names[0], "m/0:" + names[0]), ("p/1:" + names[1], "m/1:" + names[1])]),
                label="Rejects")
    pipeline.run().wait_until_finish()


def test_per_language_scope_keeps_copies_in_other_languages(real_files):
    text = real_files[sorted(real_files)[0]]
    docs = [doc("a:x", text, language="python"), doc("b:x", edited(text), language="java")]
    run_dedup(docs, NearDedupConfig(per_language=True), expect_kept=["a:x", "b:x"], expect_rejects=[])


@pytest.mark.parametrize("shards, flush", [(1, 4096), (7, 4096), (4096, 3)])
def test_lsh_shards_and_batch_flushes_do_not_change_the_result(real_files, monkeypatch, shards, flush):
    """Buckets are the same whether the band keys of a bundle travel in one batch or are flushed
    every three documents, and whatever the number of LSH shards they spread over."""
    from transforms.dedup.lsh import BandKeysFn

    monkeypatch.setattr(BandKeysFn, "_BATCH", flush)
    names = sorted(real_files)[:10]
    docs = [doc(f"orig/{i}:{n}", real_files[n]) for i, n in enumerate(names)]
    docs += [doc(f"fork/{i}:{n}", edited(real_files[n])) for i, n in enumerate(names[:4])]
    docs += [doc(f"copy/{k}:{names[0]}", real_files[names[0]] + f"\n# build {k}\n") for k in range(3)]
    expect = [(f"orig/{i}:{n}", "near_duplicate", f"fork/{i}:{n}") for i, n in enumerate(names[1:4], 1)]
    expect += [(d, "near_duplicate", f"copy/0:{names[0]}") for d in
               [f"orig/0:{names[0]}", f"fork/0:{names[0]}", f"copy/1:{names[0]}", f"copy/2:{names[0]}"]]
    counts = run_dedup(docs, NearDedupConfig(lsh_shards=shards), expect_rejects=expect)
    assert counts["components"] == 4 and counts["lsh_buckets"] >= 4


def test_lsh_shards_must_be_positive():
    with pytest.raises(ValueError, match="lsh_shards"):
        NearDedup(NearDedupConfig(lsh_shards=0))
