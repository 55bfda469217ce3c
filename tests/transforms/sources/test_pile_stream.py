"""Streaming a Pile file's lines: the split does not depend on where the chunks break."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import zstandard

from transforms.sources.pile_stream import iter_lines

SAMPLE = Path(__file__).resolve().parents[3] / "samples" / "nl" / "val.jsonl.zst"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iter_lines_is_independent_of_chunk_boundaries(seed):
    with SAMPLE.open("rb") as handle:  # zstandard's own reader, not the code under test
        content = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()
    content = content[:200_000] + b"\n\nlast line without newline"
    rng = random.Random(seed)
    chunks, at = [], 0
    while at < len(content):
        size = rng.choice([1, 2, 7, 100, 4096, 65536])
        chunks.append(content[at:at + size])
        at += size
    lines = content.split(b"\n")
    assert list(iter_lines(chunks, 1 << 20)) == [(line, len(line)) for line in lines]
    limit = 600
    assert list(iter_lines(chunks, limit)) == [(None if len(x) > limit else x, len(x)) for x in lines]
