"""Special tokens of the Sluice code tokenizer, shared by the pipelines and the training jobs.

Their strings and their order fix the ids of every trained model (see ``SPECIAL_TOKENS``), so the
trainer, the pipeline that packs token streams and the training job must read them from here.
Plain constants, no imports: anything may import this module.
"""

from __future__ import annotations

# Separates documents in packed streams. A control token: no text ever encodes to it, not even a
# file that contains this very string.
END_OF_TEXT = "<|endoftext|>"
# Padding for fixed-length batches; a control token as well.
PAD = "<|pad|>"
# SentencePiece insists on an unknown piece. Byte fallback means encoding never emits it.
UNKNOWN = "<|unk|>"

# One control token per language of the Multi corpus, so a document can be prefixed with its
# language. Insertion order is id order.
LANGUAGE_TAGS = {
    "python": "<|python|>",
    "java": "<|java|>",
    "javascript": "<|javascript|>",
    "go": "<|go|>",
    "c": "<|c|>",
    "cpp": "<|cpp|>",
}

# CodeGen-style whitespace tokens: indentation costs one token per run instead of one per space.
# They are matched greedily (longest first) wherever they occur, so a longer run is split into
# the longest runs that fit. A single space is left to BPE, which glues it to the next word.
MAX_SPACE_RUN = 32
MAX_TAB_RUN = 16
SPACE_RUNS = tuple(" " * n for n in range(2, MAX_SPACE_RUN + 1))
TAB_RUNS = tuple("\t" * n for n in range(1, MAX_TAB_RUN + 1))
WHITESPACE_RUNS = SPACE_RUNS + TAB_RUNS

# The fixed head of every vocabulary: the id of each of these tokens is its index here. After
# them come WHITESPACE_RUNS, then the 256 byte pieces <0x00>..<0xFF>, then the learned pieces.
SPECIAL_TOKENS = (PAD, UNKNOWN, END_OF_TEXT, *LANGUAGE_TAGS.values())
PAD_ID = SPECIAL_TOKENS.index(PAD)
UNKNOWN_ID = SPECIAL_TOKENS.index(UNKNOWN)
END_OF_TEXT_ID = SPECIAL_TOKENS.index(END_OF_TEXT)
