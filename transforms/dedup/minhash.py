"""MinHash signatures of documents' word shingles, vectorised with numpy, in datasketch's scheme.

Shingles are word n-grams over ``re.findall(r"\\w+", text.lower())`` (a document with fewer than n
words is one shingle of all its words). Each shingle's UTF-8 bytes (words joined by one space)
hash to 32 bits with ``shingle_hash32``; the signature is datasketch 2.0's ``affine32`` MinHash
over those hashes with datasketch's own permutations for the seed, so
``datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash32)`` gives the same signature.

Why a hash of our own rather than datasketch's default (SHA-1 per shingle): SHA-1 runs once per
shingle in a Python loop, which caps a worker at a few MB/s. ``shingle_hash32`` is a polynomial
hash that numpy computes for all shingles of a document at once from prefix sums over the
document's code points (``transforms.dedup.polyhash``), then mixes with SplitMix64.
"""

from __future__ import annotations

import functools
import re
import numpy as np

from transforms.dedup.polyhash import Powers, splitmix64

DEFAULT_NGRAM = 5
DEFAULT_NUM_PERM = 256
DEFAULT_SEED = 1
_WORD = re.compile(r"\w+")
_ASCII_WORD = re.compile(r"\w+", re.ASCII)  # the same matches on ASCII text, found faster
_BASE = 0x9E3779B97F4A7C15 | 1  # odd, so invertible modulo 2**64
_MASK64 = (1 << 64) - 1
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)


def words(text: str) -> list[str]:
    lowered = text.lower()
    return (_ASCII_WORD if lowered.isascii() else _WORD).findall(lowered)


def shingles(text: str, n: int = DEFAULT_NGRAM) -> list[bytes]:
    """The document's shingles as UTF-8 bytes (reference definition; tests and benchmarks use it).

    A document with fewer than n words is one shingle of all its words; with no word at all, that
    is the empty shingle, so word-less documents are duplicates of each other.
    """
    ws = words(text)
    if len(ws) < n:
        return [" ".join(ws).encode("utf-8")]
    return [" ".join(ws[k:k + n]).encode("utf-8") for k in range(len(ws) - n + 1)]


def _splitmix64_high32(h: int) -> int:
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK64
    return (h ^ (h >> 31)) >> 32


def shingle_hash32(data: bytes) -> int:
    """32-bit hash of one shingle (UTF-8 bytes): sum((code point + 1) * BASE**i) mod 2**64 over
    its characters, mixed by SplitMix64. Code points, not bytes, so a word's length in the hash
    is its length in Python: no per-word encoding for non-ASCII text."""
    h, power = 0, 1
    for char in data.decode("utf-8"):
        h = (h + (ord(char) + 1) * power) & _MASK64
        power = power * _BASE & _MASK64
    return _splitmix64_high32(h)


_POWERS = Powers(_BASE)


def shingle_hashes(text: str, n: int = DEFAULT_NGRAM) -> np.ndarray:
    """``shingle_hash32`` of every shingle of ``text``, as uint32, computed without a Python loop.

    The words are never cut out as strings (the regex, join and encode per document were most of
    the time): the lowered text becomes one code-point array (bytes for ASCII text, three quarters
    of the code corpus), a table marks word characters, and the hash runs over the words'
    characters with the first character of every gap between two words standing for the one
    space that joins them: exactly the code points of ``" ".join(words(text))``.
    """
    if n < 1:
        raise ValueError(f"shingles need at least one word, not n={n}")
    lowered = text.lower()
    if lowered.isascii():
        points = np.frombuffer(lowered.encode("ascii"), dtype=np.uint8)
    else:  # one element per code point, as Python indexes str; lone surrogates are not words
        points = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    padded = np.zeros(points.size + 2, dtype=bool)
    is_word = padded[1:-1]
    _mark_word_chars(points, out=is_word)
    bounds = np.flatnonzero(padded[1:] != padded[:-1])  # word starts and (exclusive) ends, alternating
    if bounds.size == 0:
        return np.array([shingle_hash32(b"")], dtype=np.uint32)
    starts, ends = bounds[0::2], bounds[1::2]
    is_word[ends[:-1]] = True  # keep one character of each gap between words: it becomes the space
    joined = points[is_word]
    lengths = ends - starts
    first = np.zeros(starts.size, dtype=np.int64)  # word starts and ends in ``joined``
    np.cumsum(lengths[:-1] + 1, out=first[1:])
    last = first + lengths
    joined[last[:-1]] = ord(" ")
    if starts.size < n:
        s, e = first[:1], last[-1:]
    else:
        s, e = first[: starts.size - n + 1], last[n - 1:]
    up, down = _POWERS.get(joined.size + 1)
    prefix = np.empty(joined.size + 1, dtype=np.uint64)
    prefix[0] = 0
    terms = joined.astype(np.uint64)
    terms += np.uint64(1)
    terms *= up[: joined.size]
    np.cumsum(terms, out=prefix[1:])
    spans = (prefix[e] - prefix[s]) * down[s]  # sum of (point+1) * BASE**(i - s) over the span
    return (splitmix64(spans) >> np.uint64(32)).astype(np.uint32)


# Whether each ASCII code point is a word character for ``_WORD``; entry 128 stands for any
# code point above ASCII, which ``_mark_word_chars`` then asks the regex about.
_ASCII_IS_WORD = np.array([_WORD.fullmatch(chr(c)) is not None for c in range(128)] + [False])
_WORD_CHAR = re.compile(r"\w")


def _mark_word_chars(points: np.ndarray, out: np.ndarray) -> None:
    """out[i] = whether code point i is matched by ``\\w``: a table for ASCII, and for the rest the
    regex itself, once per distinct character, so the Unicode definition is re's own."""
    if points.dtype == np.uint8:
        np.take(_ASCII_IS_WORD, points, out=out)
        return
    np.take(_ASCII_IS_WORD, np.minimum(points, 128), out=out)
    high = np.flatnonzero(points >= 128)
    above = points[high]
    chars = np.unique(above)
    words_at = [m.start() for m in _WORD_CHAR.finditer("".join(map(chr, chars.tolist())))]
    if words_at:
        out[high] = np.isin(above, chars[words_at])


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """Signatures over shingle hashes with datasketch's affine32 permutations for ``seed``."""

    # Shingles per block: a [256, 4096] uint32 block (4 MiB) measured fastest of 512..8192 here,
    # and [perm, shingle] beats [shingle, perm]: the multiply and the min run along contiguous rows.
    _CHUNK = 4096

    def __init__(self, num_perm: int = DEFAULT_NUM_PERM, seed: int = DEFAULT_SEED):
        from datasketch import MinHash

        reference = MinHash(num_perm=num_perm, seed=seed, scheme="affine32")
        self.num_perm = num_perm
        self.seed = seed
        self._a = np.asarray(reference.permutations[0], dtype=np.uint32)[:, None]
        self._b = np.asarray(reference.permutations[1], dtype=np.uint32)[:, None]
        self._empty = np.asarray(reference.hashvalues, dtype=np.uint32)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """uint32[num_perm]: the minimum of every permutation over the shingle hashes."""
        result = self._empty.copy()
        if hashes.size == 0:
            return result
        mixed = _fmix32(hashes)  # duplicates cannot change a minimum: no np.unique needed
        block = np.empty((self.num_perm, min(self._CHUNK, mixed.size)), dtype=np.uint32)
        for start in range(0, mixed.size, self._CHUNK):
            part = mixed[start:start + self._CHUNK]
            view = block[:, : part.size]
            np.multiply(self._a, part, out=view)
            view += self._b
            np.minimum(result, view.min(axis=1), out=result)
        return result

    def signature_of_text(self, text: str, n: int = DEFAULT_NGRAM) -> np.ndarray:
        return self.signature(shingle_hashes(text, n))


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / a.size


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted unique shingle-hash arrays."""
    if a.size == 0 and b.size == 0:
        return 1.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int, false_positive_weight: float = 0.5,
               false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) from datasketch's own optimiser of weighted false positive/negative rates."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)
