"""MinHash signatures: datasketch's definition, on real files, computed vectorised.

``shingle_hashes`` never builds the shingles it hashes, so these tests pin it to the reference
definition (``shingles`` + ``shingle_hash32``) on every kind of text a corpus holds: ASCII and
not, tabs, CRLF, underscores, digits, Unicode word characters, fewer than n words, none at all.
"""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pytest
from datasketch import MinHash

from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.dedup.minhash import (
    _WORD,
    MinHasher,
    _mark_word_chars,
    estimated_jaccard,
    exact_jaccard,
    lsh_params,
    shingle_hash32,
    shingle_hashes,
    shingles,
)

SAMPLES = pathlib.Path(__file__).resolve().parents[3] / "samples"
ARCHIVES = SAMPLES / "mono" / "archives"


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


def _reference(text: str, n: int = 5) -> list[int]:
    return [shingle_hash32(s) for s in shingles(text, n)]


@pytest.fixture(scope="module")
def tricky_files():
    """Every sample archive file with non-ASCII text, CRLF line ends or tabs (at most 40 KB, to
    keep the scalar reference fast), by kind, so each kind is known to be covered."""
    kinds = {"non-ascii": [], "crlf": [], "tab": []}
    for archive in sorted(ARCHIVES.glob("*.tar.gz")):
        for member in iter_members(str(archive), ArchiveLimits()):
            if member.data is None or len(member.data) > 40_000:
                continue
            try:
                text = member.data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            for kind, present in (("non-ascii", not text.isascii()), ("crlf", "\r\n" in text),
                                  ("tab", "\t" in text)):
                if present:
                    kinds[kind].append(text)
    return kinds


@pytest.fixture(scope="module")
def pile_texts():
    """The Pile's validation sample: English prose, arXiv LaTeX and maths, with accents and symbols."""
    zstandard = pytest.importorskip("zstandard", reason="zstandard reads the Pile sample")
    with open(SAMPLES / "nl" / "val.jsonl.zst", "rb") as handle:
        reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(handle), encoding="utf-8")
        return [json.loads(line)["text"] for line in reader]


EDGE_CASES = [
    "", " ", "\r\n\t", "...", "()", "a", "_", "9", "a b c d", "a b c d e", "a b c d e f",
    "x_y __init__ self.x_1 = 0x1F + 12.5e-3", "if a:\r\n\treturn b\r\n", "\ttabs\tand\t\tmore\ttabs\t",
    "  leading and trailing gaps of many kinds\t\r\n ;; ", "MiXeD CaSe WoRdS HeRe tOo",
    "héllo wörld — ünïcode idents ΔΣ café x y z", "naïve   façade\u00a0nbsp is not a word char",
    "İstanbul İİ lowers to i + a combining dot, which is not a word character",
    "ǅungla ǈ ß ẞ ﬁle ΣΑΣ ΌΣΟΣ final sigma", "٣٤ ²³ ½ Ⅻ digits and numbers of every script 1 2",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 beyond the BMP 😀 emoji 😀 are not words a b", "日本語のテキスト 中文 한국어 a b c d e",
    "zero\u200bwidth\u200djoiner e\u0301 combining acute x y z",
    "lone \ud800 surrogate \udfff halves are gaps a b c",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_fast_hashes_equal_the_reference_on_edge_cases(text):
    for n in (1, 2, 5):
        assert shingle_hashes(text, n).tolist() == _reference(text, n), (text, n)


def test_shingles_of_no_words_are_refused():
    with pytest.raises(ValueError, match="n=0"):
        shingle_hashes("a b c", 0)


def test_fast_hashes_equal_the_reference_on_tricky_sample_files(tricky_files):
    for kind, texts in tricky_files.items():
        assert len(texts) >= 10, f"samples should hold {kind} files"
        for text in texts:
            assert shingle_hashes(text).tolist() == _reference(text), kind


def test_fast_hashes_equal_the_reference_on_pile_prose(pile_texts):
    assert sum(not t.isascii() for t in pile_texts) >= 10
    for text in pile_texts:
        assert shingle_hashes(text).tolist() == _reference(text)
        assert shingle_hashes(text, 3).tolist() == _reference(text, 3)


def test_fast_hashes_equal_the_reference_on_random_mixtures():
    """Seeded random texts over word, gap and case-changing characters, ASCII and not."""
    pool = list("aZ_09 \t\r\n.,:;()'\"-") + list("éÉßİıΣσςǅ٣²½Ⅻ日😀\u00a0\u0301\u200b\ud800")
    rng = np.random.default_rng(7)
    for k in range(300):
        text = "".join(rng.choice(pool, size=int(rng.integers(0, 60))))
        if k % 2:
            text = text.encode("ascii", "ignore").decode("ascii")
        n = int(rng.integers(1, 7))
        assert shingle_hashes(text, n).tolist() == _reference(text, n), (text, n)


def test_word_characters_are_the_regex_own_for_every_code_point():
    points = np.arange(0x110000, dtype=np.uint32)
    ours = np.zeros(points.size, dtype=bool)
    _mark_word_chars(points, out=ours)
    expected = np.fromiter((_WORD.fullmatch(chr(c)) is not None for c in range(0x110000)), dtype=bool,
                           count=points.size)
    np.testing.assert_array_equal(ours, expected)
    ascii_points = np.arange(128, dtype=np.uint8)
    ascii_ours = np.zeros(128, dtype=bool)
    _mark_word_chars(ascii_points, out=ascii_ours)
    np.testing.assert_array_equal(ascii_ours, expected[:128])


def test_signatures_equal_datasketch_on_non_ascii_and_crlf_files(tricky_files, pile_texts):
    hasher = MinHasher(num_perm=128, seed=3)
    texts = tricky_files["non-ascii"][:15] + tricky_files["crlf"][:10] + [t for t in pile_texts if not t.isascii()][:10]
    texts += ["", "tiny", "ünïcode ΔΣ"]
    for text in texts:
        reference = MinHash(num_perm=128, seed=3, hashfunc=shingle_hash32, scheme="affine32")
        reference.update_batch(shingles(text))
        np.testing.assert_array_equal(hasher.signature_of_text(text), reference.hashvalues)


@pytest.mark.parametrize("size", [1, 2, MinHasher._CHUNK - 1, MinHasher._CHUNK, MinHasher._CHUNK + 1,
                                  2 * MinHasher._CHUNK + 17])
@pytest.mark.parametrize("head", ["random", "one value"])
def test_signature_kernel_equals_datasketch_across_block_sizes(size, head):
    """The blocked MinHash kernel on its own, fed hashes directly (datasketch takes them through
    an identity hashfunc), on sizes around the block edge. With the whole first block one value,
    every later block must set about half the minima, so a block left out cannot go unnoticed."""
    hashes = np.random.default_rng(size).integers(0, 2**32, size=size, dtype=np.uint64).astype(np.uint32)
    if head == "one value":
        hashes[: MinHasher._CHUNK] = hashes[0]
    hasher = MinHasher(num_perm=256, seed=1)
    reference = MinHash(num_perm=256, seed=1, hashfunc=int, scheme="affine32")
    reference.update_batch(hashes.tolist())
    np.testing.assert_array_equal(hasher.signature(hashes), reference.hashvalues)
    np.testing.assert_array_equal(hasher.signature(hashes[::-1].copy()), reference.hashvalues)
