"""The Pile's release format: the 22 official ``meta.pile_set_name`` values and the file names.

Kept free of Beam so readers and training jobs can share it. The names are spelled exactly as in
the release's ``meta`` field (Gao et al. 2020, table 1 and the release files).
"""

from __future__ import annotations

PILE_SET_NAMES = (
    "Pile-CC", "PubMed Central", "Books3", "OpenWebText2", "ArXiv", "Github", "FreeLaw",
    "StackExchange", "USPTO Backgrounds", "PubMed Abstracts", "Gutenberg (PG-19)", "OpenSubtitles",
    "Wikipedia (en)", "DM Mathematics", "Ubuntu IRC", "BookCorpus2", "EuroParl", "HackerNews",
    "YoutubeSubtitles", "PhilPapers", "NIH ExPorter", "Enron Emails",
)

# What a Pile input file may be called: the release ships ``.jsonl.zst``; ``.jsonl.gz`` and plain
# ``.jsonl`` hold the same lines.
FILE_SUFFIXES = (".jsonl.zst", ".jsonl.gz", ".jsonl")

# Documents of the Pile are natural-language text (mostly English; EuroParl is multilingual), so
# their ``language`` is "text", not a language code and not a programming language.
LANGUAGE = "text"


def canonical_set_names(names) -> tuple:
    """Official spellings of ``names`` (matched case-insensitively); ValueError on an unknown one."""
    official = {name.lower(): name for name in PILE_SET_NAMES}
    unknown = [name for name in names if name.lower() not in official]
    if unknown:
        raise ValueError(
            f"unknown Pile set {', '.join(repr(n) for n in unknown)}; the 22 sets are: "
            + ", ".join(PILE_SET_NAMES)
        )
    return tuple(dict.fromkeys(official[name.lower()] for name in names))


def compression_of(path: str) -> str:
    """"zstd", "gzip" or "none", from the file name."""
    if path.endswith(".zst"):
        return "zstd"
    if path.endswith(".gz"):
        return "gzip"
    return "none"
