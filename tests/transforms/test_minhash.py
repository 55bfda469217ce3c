"""MinHash signatures: datasketch's definition, on real files, computed vectorised."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from datasketch import MinHash

from transforms.archive_stream import ArchiveLimits, iter_members
from transforms.minhash import (
    MinHasher,
    estimated_jaccard,
    exact_jaccard,
    lsh_params,
    shingle_hash32,
    shingle_hashes,
    shingles,
)

ARCHIVES = pathlib.Path(__file__).resolve().parents[2] / "samples" / "mono" / "archives"


@pytest.fixture(scope="module")
def real_files():
    texts = []
    for archive in sorted(ARCHIVES.glob("*.tar.gz"))[:6]:
        for member in iter_members(str(archive), ArchiveLimits()):
            if member.data is not None and member.path.endswith(".py"):
                texts.append(member.data.decode("utf-8"))
    return texts


def test_shingles_follow_the_definition():
    assert shingles("Def f(x): return X + 1") == [b"def f x return x", b"f x return x 1"]
    assert shingles("one two", n=5) == [b"one two"]
    assert shingles("  ... ") == [b""]  # no word: the empty shingle
    assert shingle_hashes("  ... ").tolist() == [shingle_hash32(b"")]


def test_vectorised_hashes_equal_the_scalar_definition(real_files):
    extra = ["héllo wörld — ünïcode idents ΔΣ café x y z", "tiny", "a\tb\nc"]
    for text in real_files[:80] + extra:
        expected = [shingle_hash32(s) for s in shingles(text)]
        assert shingle_hashes(text).tolist() == expected


def test_signatures_equal_datasketch_minhash_on_real_files(real_files):
    hasher = MinHasher(num_perm=256, seed=1)
    checked = 0
    for text in real_files[:60]:
        reference = MinHash(num_perm=256, seed=1, hashfunc=shingle_hash32)
        reference.update_batch(shingles(text))
        ours = hasher.signature(shingle_hashes(text))
        assert ours.dtype == np.uint32
        np.testing.assert_array_equal(ours, reference.hashvalues)
        checked += 1
    assert checked == 60


def test_another_seed_gives_other_permutations(real_files):
    text = real_files[0]
    a = MinHasher(64, seed=1).signature(shingle_hashes(text))
    b = MinHasher(64, seed=2).signature(shingle_hashes(text))
    reference = MinHash(num_perm=64, seed=2, hashfunc=shingle_hash32)
    reference.update_batch(shingles(text))
    np.testing.assert_array_equal(b, reference.hashvalues)
    assert not np.array_equal(a, b)


def test_estimate_tracks_exact_jaccard(real_files):
    hasher = MinHasher(256, 1)
    lines = real_files[3].splitlines()
    a, b = "\n".join(lines[:200]), "\n".join(lines[20:220])
    ha, hb = np.unique(shingle_hashes(a)), np.unique(shingle_hashes(b))
    exact = exact_jaccard(ha, hb)
    estimate = estimated_jaccard(hasher.signature(ha), hasher.signature(hb))
    assert 0.5 < exact < 1.0
    assert abs(estimate - exact) < 0.1


def test_lsh_parameters_come_from_datasketch():
    from datasketch.lsh import _optimal_param

    assert lsh_params(0.8, 256) == _optimal_param(0.8, 256, 0.5, 0.5)
    bands, rows = lsh_params(0.8, 256)
    assert bands * rows <= 256 and bands > 1 and rows > 1
