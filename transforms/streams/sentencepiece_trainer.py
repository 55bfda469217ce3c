"""Train the Sluice code tokenizer: byte-fallback BPE that keeps source code byte for byte.

Plain Python (no Beam), so it runs on one machine over a sample of the corpus. Returns the
serialized model; load it with ``schemas.tokenizer.Tokenizer``.

Settings and why (checked by tests/transforms/streams/test_sentencepiece_trainer.py):
* normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False:
  no NFKC, no collapsing or stripping of spaces, no space glued to the start of the text.
* byte_fallback=True: characters outside the learned alphabet become UTF-8 byte pieces, so
  nothing is ever <unk>.
* Documents are fed as chunks of whole lines (newlines kept inside) of at most
  ``max_sentence_bytes``; SentencePiece silently skips longer sentences, so over-long lines are
  cut at a character boundary. "\\n" (and "\\r", via required_chars) are ordinary characters, so
  BPE learns pieces such as "):\\n" and "\\n\\n".
* Whitespace runs are user_defined_symbols, written with U+2581 because SentencePiece escapes
  spaces to U+2581 before matching them (runs spelled with real spaces are never used). Tabs
  need them too: SentencePiece never puts a tab into a learned piece, so without them every tab
  would be the byte piece <0x09>.
* split_by_whitespace=True and split_by_unicode_script=True (defaults): a piece does not span a
  space nor mix letters with punctuation or digits with letters, close to GPT-2/CodeGen's
  pre-tokenizer.
* EOT, pad and language tags are control symbols: no text ever encodes to them.
* Determinism: SentencePiece's own sampling (input_sentence_size/shuffle_input_sentence) draws
  from a process-global RNG that is random unless someone seeded it, so it is switched off; ``max_sentences`` instead keeps the chunks with
  the smallest keyed hashes, which depends only on ``seed`` and the set of chunks (not their
  order). BPE training itself is deterministic; the number of threads does not change the pieces,
  but the model bytes record ``num_threads`` in their trainer spec.
* hard_vocab_limit=True: the model has exactly ``vocab_size`` pieces (the training job sizes its
  embedding from it); a corpus too small to learn that many merges is an error, not a smaller
  model.

Caveats (SentencePiece 0.2.x behaviour, affect training only, never round trips):
* A chunk that contains U+2585 ("▅", SentencePiece's internal unk mark) is skipped in training.
* Inside training text, SentencePiece cuts at every literal special token, run token or byte
  piece name ("<0x41>"), so no learned piece spans one.
* Literal U+2581 in training text counts as a space; ``Tokenizer.encode`` handles it at encode
  time (see schemas.tokenizer).
"""

from __future__ import annotations

import hashlib
import heapq
import io
import string
from typing import Iterable, Iterator, Optional

import sentencepiece as spm

from schemas import tokens

SP_SPACE = "\u2581"

# Always in the alphabet, however small the corpus: printable ASCII, newline and carriage return.
REQUIRED_CHARS = "".join(c for c in string.printable if not c.isspace()) + "\n\r"


def split_long_line(line: str, max_bytes: int) -> Iterator[str]:
    """Cut ``line`` into parts of at most ``max_bytes`` UTF-8 bytes, never inside a character."""
    data = line.encode("utf-8")
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # continuation byte
            end -= 1
        yield data[start:end].decode("utf-8")
        start = end


def chunk_lines(text: str, max_bytes: int) -> Iterator[str]:
    """Whole lines of ``text`` (each keeping its "\\n") grouped into chunks of <= ``max_bytes``."""
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4 (one UTF-8 character)")
    buf: list[str] = []
    size = 0
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if i < len(lines) - 1:
            line += "\n"
        if not line:
            continue
        n = len(line.encode("utf-8"))
        if size + n > max_bytes and buf:
            yield "".join(buf)
            buf, size = [], 0
        if n > max_bytes:
            yield from split_long_line(line, max_bytes)
            continue
        buf.append(line)
        size += n
    if buf:
        yield "".join(buf)


def sample_sentences(sentences: Iterable[str], k: int, seed: int = 0) -> list[str]:
    """The ``k`` sentences with the smallest seeded hash, in hash order.

    Deterministic and independent of input order (a bottom-k sample); holds only ``k`` sentences.
    """
    key = seed.to_bytes(8, "little", signed=True)
    heap: list[tuple[int, str]] = []  # (-hash, sentence): heap[0] holds the largest kept hash
    for s in sentences:
        h = int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=16, key=key).digest())
        if len(heap) < k:
            heapq.heappush(heap, (-h, s))
        elif -h > heap[0][0]:
            heapq.heapreplace(heap, (-h, s))
    return [s for _, s in sorted(heap, reverse=True)]


def training_sentences(
    texts: Iterable[str], max_sentence_bytes: int, max_sentences: Optional[int], seed: int
) -> Iterator[str]:
    """Chunks of all ``texts``, or a deterministic sample of ``max_sentences`` of them."""
    chunks = (c for t in texts for c in chunk_lines(t, max_sentence_bytes))
    if max_sentences is None:
        return chunks
    return iter(sample_sentences(chunks, max_sentences, seed))


def sentencepiece_options(
    vocab_size: int,
    *,
    model_type: str = "bpe",
    max_sentence_bytes: int = 4096,
    character_coverage: float = 0.9999,
    hard_vocab_limit: bool = True,
    num_threads: int = 1,
) -> dict:
    """Keyword arguments for ``SentencePieceTrainer.train`` (without input and output)."""
    return dict(
        model_type=model_type,
        vocab_size=vocab_size,
        hard_vocab_limit=hard_vocab_limit,
        # Keep text exactly as it is.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        byte_fallback=True,
        character_coverage=character_coverage,
        required_chars=REQUIRED_CHARS,
        split_by_whitespace=True,
        allow_whitespace_only_pieces=True,
        split_by_unicode_script=True,
        split_digits=False,
        # Fixed ids, see schemas.tokens.SPECIAL_TOKENS.
        pad_id=tokens.PAD_ID,
        pad_piece=tokens.PAD,
        unk_id=tokens.UNKNOWN_ID,
        unk_piece=tokens.UNKNOWN,
        eos_id=tokens.END_OF_TEXT_ID,
        eos_piece=tokens.END_OF_TEXT,
        bos_id=-1,
        control_symbols=list(tokens.LANGUAGE_TAGS.values()),
        user_defined_symbols=[run.replace(" ", SP_SPACE) for run in tokens.WHITESPACE_RUNS],
        # Input: we chunk and sample ourselves (see the module docstring).
        max_sentence_length=max_sentence_bytes,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=num_threads,
        minloglevel=2,  # errors only; SentencePiece logs every step to stderr otherwise
    )


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int,
    *,
    model_type: str = "bpe",
    max_sentence_bytes: int = 4096,
    max_sentences: Optional[int] = None,
    seed: int = 0,
    character_coverage: float = 0.9999,
    hard_vocab_limit: bool = True,
    num_threads: int = 1,
) -> bytes:
    """Train on ``texts`` (whole source files) and return the serialized model proto.

    ``max_sentences`` caps the number of chunks trained on (a seeded, order-independent sample);
    ``None`` trains on everything. Same texts and arguments give byte-identical models.
    """
    options = sentencepiece_options(
        vocab_size,
        model_type=model_type,
        max_sentence_bytes=max_sentence_bytes,
        character_coverage=character_coverage,
        hard_vocab_limit=hard_vocab_limit,
        num_threads=num_threads,
    )
    sentences = training_sentences(texts, max_sentence_bytes, max_sentences, seed)
    first = next(sentences, None)
    if first is None:
        raise ValueError("no training text")
    out = io.BytesIO()
    spm.set_random_generator_seed(seed)  # nothing we enable draws from it; pinned all the same
    spm.SentencePieceTrainer.train(
        sentence_iterator=_prepend(first, sentences), model_writer=out, **options
    )
    return out.getvalue()


def _prepend(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest
