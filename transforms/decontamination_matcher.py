"""Benchmark n-gram matching: normalised tokens, their hashes, the index of benchmark items and the
coverage test that ``transforms.decontamination`` applies to each document (plain numpy, no Beam).

Normalisation. A token is a maximal run of ASCII letters, digits, ``_`` or non-ASCII bytes of the
UTF-8 text (Python's ``\\w+`` on ASCII; non-ASCII characters stay inside words), with ASCII letters
lowercased. Punctuation and whitespace are dropped, so an n-gram is 13 *words*: a copy that was
reindented, re-wrapped, converted to CRLF or tabs, requoted (``'`` vs ``"``) or reformatted by a
formatter (spaces, trailing commas, parentheses) still matches. Dropping punctuation also makes a
13-gram more specific, not less: 13 words span one to three lines of code, whereas 13 mixed tokens
are half ``(``, ``)``, ``:`` and ``,``, which say little. The escapes ``\\n``, ``\\r`` and ``\\t``
separate words too, so a problem pasted into a string literal or a JSON file still matches.

Templates. MTPB prompts are templates (``"Assign the string \\"{A}\\" to ..."``) whose
placeholders a copy may have filled in with any value, so no benchmark n-gram spans a
``{identifier}`` placeholder: a benchmark text is cut into segments there (``{{...}}`` escapes are
not placeholders). HumanEval texts contain no such placeholder.

Short items. An item none of whose segments has ``n`` tokens has no n-gram. Each of its segments
of at least ``min_tokens`` (8, at most ``n``) tokens is then one gram of its own length, matched
against the document's grams of that length; an item with no such segment is skipped (listed in
``NgramIndex.skipped`` and logged), because a shorter word sequence is common in ordinary code.
HumanEval (18+ tokens) and MTPB (a segment of 17+ tokens in every item) have no short item.

Hashing. Tokens and n-grams get 64-bit polynomial hashes (mod 2**64, finished by the SplitMix64
mixer) computed with numpy over the whole text at once: prefix sums of byte values times inverse
powers give every token's hash, prefix sums of token hashes give every n-gram's hash, and the
document's n-grams are looked up in a bitmap of the benchmark hashes' top bits, and the few that
pass in the sorted benchmark hashes with ``np.searchsorted``. No Python loop runs per token, and
the hashes are the same in every process (Python's ``hash()`` is not).
When n-grams of several items collide, the smallest item id in natural order (``HumanEval/2`` <
``HumanEval/10`` < ``MTPB/1``) wins, so a document's verdict does not depend on load order.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Optional

import numpy as np

from transforms.dedup.polyhash import Powers, splitmix64

# --------------------------------------------------------------------------------------------
# Normalisation and hashing (numpy, vectorised, deterministic)
# --------------------------------------------------------------------------------------------

_BYTE_BASE = 0x100000001B3  # odd, so invertible mod 2**64
_GRAM_BASE = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1

_WORD_BYTE = np.zeros(256, dtype=bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD_BYTE[_c] = True
_WORD_BYTE[0x80:] = True
_BYTE_VALUE = np.arange(1, 257, dtype=np.uint64)  # byte + 1, ASCII letters lowercased
_BYTE_VALUE[ord("A"):ord("Z") + 1] += 32
_ESCAPE_LETTER = np.zeros(256, dtype=bool)
_ESCAPE_LETTER[list(b"nrt")] = True

_PLACEHOLDER = re.compile(r"(?<!\{)\{\w+\}(?!\})")


def template_segments(text: str) -> list[str]:
    """The text cut at ``{identifier}`` template placeholders (no n-gram spans one)."""
    return _PLACEHOLDER.split(text)


_BYTE_POWERS = Powers(_BYTE_BASE)
_GRAM_POWERS = Powers(_GRAM_BASE)


def token_bounds(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) byte offsets of the tokens of UTF-8 bytes."""
    word = _WORD_BYTE[data]
    # The escapes \n, \r and \t separate words, as the characters they stand for: a benchmark
    # copied into a string literal or a JSON file ("...List[int]:\n    \"\"\"...") still matches.
    slashes = np.flatnonzero(data[:-1] == 0x5C)
    if len(slashes):
        escaped = slashes[_ESCAPE_LETTER[data[slashes + 1]]] + 1
        word[escaped] = False
    edges = np.flatnonzero(np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0)))
    return edges[0::2], edges[1::2]  # a word starts at every other edge and ends at the next


def token_hashes(text: str) -> np.ndarray:
    """64-bit hash of each normalised token of the text, in order (uint64 array)."""
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    if len(data) == 0:
        return np.empty(0, dtype=np.uint64)
    starts, ends = token_bounds(data)
    if len(starts) == 0:
        return np.empty(0, dtype=np.uint64)
    up, down = _BYTE_POWERS.get(len(data) + 1)
    prefix = np.empty(len(data) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(_BYTE_VALUE[data] * down[: len(data)], out=prefix[1:])
    # sum of value[j] * base**(end-1-j) over the token: the same for a token wherever it stands.
    poly = (prefix[ends] - prefix[starts]) * up[ends - 1]
    return splitmix64(poly ^ (ends - starts).astype(np.uint64))


def ngram_hashes(token_hash: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of each window of ``n`` consecutive token hashes (len - n + 1 of them)."""
    count_ = len(token_hash) - n + 1
    if n < 1 or count_ <= 0:
        return np.empty(0, dtype=np.uint64)
    up, down = _GRAM_POWERS.get(len(token_hash) + 1)
    prefix = np.empty(len(token_hash) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(token_hash * down[: len(token_hash)], out=prefix[1:])
    # sum of token_hash[k] * base**(i+n-1-k) for k in [i, i+n): independent of the position i.
    poly = (prefix[n:] - prefix[:count_]) * up[n - 1: n - 1 + count_]
    return splitmix64(poly)


def text_ngram_hashes(text: str, n: int) -> np.ndarray:
    """The n-gram hashes of a text's normalised tokens."""
    return ngram_hashes(token_hashes(text), n)


# --------------------------------------------------------------------------------------------
# The index and the matcher
# --------------------------------------------------------------------------------------------


def item_order(item_id: str) -> tuple:
    """Natural sort key of an item id: ``HumanEval/2`` < ``HumanEval/10`` < ``MTPB/1``."""
    parts = re.split(r"(\d+)", item_id)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), item_id


@dataclasses.dataclass(frozen=True, eq=False)
class NgramIndex:
    """The n-grams of benchmark items, as sorted numpy arrays.

    ``tables[length] = (hashes, ranks, bitmap)``: every distinct (gram hash, item) pair, sorted by
    hash and then by item, and a bitmap of the hashes' top bits that rules out almost every
    document gram with one lookup; ``length == n`` for n-grams, other lengths only for short items
    (see the module docstring). ``item_ids[rank]`` is an item's id (ranks follow ``item_order``) and
    ``gram_counts[rank]`` its number of distinct grams (0 for a skipped item).
    """

    n: int
    min_coverage: float
    item_ids: tuple
    gram_counts: np.ndarray
    tables: dict
    skipped: tuple = ()

    def __len__(self) -> int:
        """The number of distinct gram hashes."""
        return len(self.as_dict())

    def as_dict(self) -> dict:
        """``{gram_hash: the smallest item_id containing it}``, for inspection and tests."""
        out = {}
        for length in sorted(self.tables):
            hashes, ranks, _ = self.tables[length]
            for h, r in zip(hashes.tolist(), ranks.tolist()):
                if h not in out or r < out[h]:
                    out[h] = r
        return {h: self.item_ids[r] for h, r in out.items()}


def item_grams(text: str, n: int, min_tokens: int) -> dict[int, np.ndarray]:
    """{gram length: distinct hashes} that stand for one benchmark item ({} when too short)."""
    segments = [token_hashes(s) for s in template_segments(text)]
    grams = [ngram_hashes(s, n) for s in segments if len(s) >= n]
    if grams:
        return {n: np.unique(np.concatenate(grams))}
    short = {}
    for s in segments:
        if min(min_tokens, n) <= len(s) < n:
            short.setdefault(len(s), []).append(ngram_hashes(s, len(s)))
    return {length: np.unique(np.concatenate(parts)) for length, parts in short.items()}


def build_index(items: Iterable[tuple[str, str]], n: int, min_coverage: float,
                min_tokens: int) -> NgramIndex:
    """The n-gram index of benchmark items ``(item_id, text)``."""
    if n < 1:
        raise ValueError(f"n-gram length must be at least 1, got {n}")
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    ordered = sorted(items, key=lambda item: item_order(item[0]))
    ids = tuple(item_id for item_id, _ in ordered)
    if len(set(ids)) != len(ids):
        raise ValueError("benchmark item ids must be unique")
    per_length: dict[int, tuple[list, list]] = {}
    gram_counts = np.zeros(len(ids), dtype=np.int64)
    skipped = []
    for rank, (item_id, text) in enumerate(ordered):
        grams = item_grams(text, n, min_tokens)
        if not grams:
            skipped.append(item_id)
        for length, hashes in grams.items():
            gram_counts[rank] += len(hashes)
            hashes_list, ranks_list = per_length.setdefault(length, ([], []))
            hashes_list.append(hashes)
            ranks_list.append(np.full(len(hashes), rank, dtype=np.int32))
    tables = {}
    for length, (hashes_list, ranks_list) in sorted(per_length.items()):
        hashes = np.concatenate(hashes_list)
        ranks = np.concatenate(ranks_list)
        order = np.lexsort((ranks, hashes))  # by hash, then by item
        tables[length] = (hashes[order], ranks[order], _bitmap(hashes))
    return NgramIndex(n=n, min_coverage=min_coverage, item_ids=ids, gram_counts=gram_counts,
                      tables=tables, skipped=tuple(skipped))


def _bitmap(hashes: np.ndarray) -> np.ndarray:
    """Which values of a hash's top bits occur among the hashes; at most ~1/64 of them do (HumanEval
    and MTPB's 17k grams: 2**21 bools, 0.8% set)."""
    bits = min(max(len(hashes).bit_length() + 6, 16), 28)
    bitmap = np.zeros(1 << bits, dtype=bool)
    bitmap[hashes >> np.uint64(64 - bits)] = True
    return bitmap


def _matched_grams(token_hash: np.ndarray, index: NgramIndex) -> np.ndarray:
    """How many distinct grams of each item (by rank) occur in the tokens."""
    matched = np.zeros(len(index.item_ids), dtype=np.int64)
    for length, (hashes, ranks, bitmap) in index.tables.items():
        grams = ngram_hashes(token_hash, length)
        if len(grams) == 0 or len(hashes) == 0:
            continue
        shift = np.uint64(65 - len(bitmap).bit_length())
        grams = grams[bitmap[grams >> shift]]  # a few % of them remain
        at = np.searchsorted(hashes, grams)
        at[at == len(hashes)] = 0
        hit = hashes[at] == grams
        if not hit.any():
            continue  # the usual case
        found = np.unique(grams[hit])
        lo = np.searchsorted(hashes, found, side="left")
        hi = np.searchsorted(hashes, found, side="right")
        sizes = hi - lo
        pairs = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes - lo, sizes)
        matched += np.bincount(ranks[pairs], minlength=len(matched))
    return matched


def coverage(text: str, index: NgramIndex) -> dict[str, float]:
    """{item id: fraction of its distinct grams found in the text} for the items it touches."""
    matched = _matched_grams(token_hashes(text), index)
    return {index.item_ids[r]: float(matched[r] / index.gram_counts[r])
            for r in np.flatnonzero(matched)}


def find_contamination(text: str, index: NgramIndex, n: Optional[int] = None) -> Optional[str]:
    """The smallest id of a benchmark item whose grams the text contains for at least
    ``index.min_coverage`` of them, or None."""
    if n is not None and n != index.n:
        raise ValueError(f"index built for {index.n}-grams, asked for {n}-grams")
    matched = _matched_grams(token_hashes(text), index)
    if not matched.any():
        return None
    flagged = np.flatnonzero((matched > 0) & (matched >= index.min_coverage * index.gram_counts))
    return index.item_ids[int(flagged[0])] if len(flagged) else None
