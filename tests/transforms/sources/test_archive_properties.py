"""Property test over the archive reader: any bytes as a repository archive (a real archive cut,
spliced or with bytes flipped, its tar recompressed or bare, random bytes) give members and a
complete archive, or one ArchiveError with a known reason; never another exception."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transforms.sources.strategies import SETTINGS
from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, iter_members

ROOT = Path(__file__).resolve().parents[3]
ARCHIVE = (ROOT / "samples" / "mono" / "archives" / "attrs-23.2.0.tar.gz").read_bytes()
TAR = gzip.decompress(ARCHIVE)
REASONS = {"archive_bad_header", "archive_bomb", "archive_corrupt", "archive_timeout", "archive_too_large",
           "archive_too_many_members", "archive_truncated", "archive_unreadable"}
LIMITS = ArchiveLimits(max_file_bytes=1 << 20, max_archive_bytes=64 << 20, max_members=10_000)


def _edited(data: bytes, at: int, cut: bool, insert: bytes, flip: int) -> bytes:
    at %= len(data) + 1
    if cut:
        return data[:at]
    out = bytearray(data[:at] + insert + data[at:])
    if out and flip:
        out[(at + flip) % len(out)] ^= flip & 0xFF or 1
    return bytes(out)


ARCHIVES = st.one_of(
    st.tuples(st.just(ARCHIVE), st.integers(min_value=0), st.booleans(), st.binary(max_size=16),
              st.integers(min_value=0, max_value=255)).map(lambda t: _edited(*t)),
    st.tuples(st.just(TAR), st.integers(min_value=0), st.booleans(), st.binary(max_size=16),
              st.integers(min_value=0, max_value=255)).map(lambda t: gzip.compress(_edited(*t), mtime=0)),
    st.just(TAR[:4096]),                      # a bare tar, not gzip
    st.binary(max_size=2048),
)


@settings(**SETTINGS)
@given(ARCHIVES)
def test_any_archive_bytes_give_members_or_a_known_reject(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(suffix=".tar.gz") as handle:
        handle.write(data)
        handle.flush()
        try:
            for member in iter_members(handle.name, LIMITS):
                assert (member.reason is None) == (member.data is not None)
        except ArchiveError as err:
            assert err.reason in REASONS, err.reason


def test_the_unedited_sample_is_complete():
    members = list(iter_members(str(ROOT / "samples" / "mono" / "archives" / "attrs-23.2.0.tar.gz"), LIMITS))
    assert len(members) > 10 and all(m.reason is None or m.data is None for m in members)
