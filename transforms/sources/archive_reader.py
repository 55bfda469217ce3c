"""Read repository archives into Documents, one repository per element, in parallel.

Repositories are redistributed (Reshuffle) before reading so archives are fetched by many workers,
and documents are redistributed after, so one huge repository does not pin later stages to the
worker that read it.

Rule for an archive that is not complete (``archive_truncated``, ``archive_corrupt``,
``archive_bomb``, ``archive_too_large``...: see archive_stream): the repository is counted as a
reject with that reason and none of its documents are emitted, not even the files read in full
before the damage: a truncated download must not silently shrink a repository. The documents are
withheld until the archive's end was read and checked (spooled to a temporary file past
``SPOOL_BYTES``, so memory stays bounded by one file whatever the repository's size); withdrawn
documents are counted (``withdrawn``). Member rejects (links, ``too_large``, ``binary``...) are
emitted as they are read.
"""

from __future__ import annotations

import hashlib
import tempfile

import apache_beam as beam

from schemas.records import Document, RepoSpec
from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, ArchiveReport, iter_members
from transforms.stats.counting import KEPT, REJECTS, count, reject
from transforms.stats import histograms

STAGE = "read"
BINARY = "binary"  # the reject reason of a binary file (is_binary)
ARCHIVES = "archives"
SPOOL_BYTES = 32 << 20


def is_binary(data: bytes | str) -> bool:
    """Sluice's one rule for a binary file: it holds a NUL byte (git's own heuristic). Text works
    too: UTF-8 encodes no code point but U+0000 with a zero byte, so Multi's rows (already text)
    are judged exactly as Mono's archive members are."""
    return ("\x00" if isinstance(data, str) else b"\x00") in data


def decode_source(data: bytes) -> tuple[str | None, str | None]:
    """(text, None) for a UTF-8 text file, or (None, reason) for binary or undecodable bytes."""
    if is_binary(data):
        return None, BINARY
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "invalid_utf8"


class _Withheld:
    """The files of an archive read so far, kept until it is known whether the archive is whole."""

    def __init__(self):
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        self._files: list[tuple[str, int]] = []  # (path, length) in spool order

    def add(self, path: str, data: bytes) -> None:
        self._spool.write(data)
        self._files.append((path, len(data)))

    def __len__(self):
        return len(self._files)

    def __iter__(self):
        self._spool.seek(0)
        for path, length in self._files:
            yield path, self._spool.read(length)

    def close(self):
        self._spool.close()


class _ReadArchiveFn(beam.DoFn):
    def __init__(self, limits: ArchiveLimits):
        self._limits = limits

    def process(self, repo: RepoSpec):
        report = ArchiveReport()
        withheld = _Withheld()
        try:
            for member in iter_members(repo.archive, self._limits, report):
                doc_id = f"{repo.repo_name}:{member.path}"
                if member.reason is not None:
                    yield reject(doc_id, STAGE, member.reason, member.detail)
                    continue
                histograms.observe(histograms.DOCUMENT_BYTES_READ, len(member.data))
                _, reason = decode_source(member.data)
                if reason is not None:
                    yield reject(doc_id, STAGE, reason, f"{len(member.data)} bytes")
                    continue
                withheld.add(member.path, member.data)
            status = "complete"
            count(STAGE, "archives_complete")
            for path, data in withheld:
                count(STAGE, KEPT)
                yield self._document(repo, path, data)
        except ArchiveError as err:
            status = err.reason
            if withheld:
                count(STAGE, "withdrawn", len(withheld))
            detail = f"{err.detail}; {len(withheld)} documents withdrawn" if withheld else err.detail
            yield reject(repo.repo_name, STAGE, err.reason, detail)
        finally:
            withheld.close()
        yield beam.pvalue.TaggedOutput(
            ARCHIVES, (repo.repo_name, report.sha256, report.compressed_bytes, status)
        )

    @staticmethod
    def _document(repo: RepoSpec, path: str, data: bytes) -> Document:
        return Document(
            id=f"{repo.repo_name}:{path}",
            repo_name=repo.repo_name,
            path=path,
            text=data.decode("utf-8"),
            sha256=hashlib.sha256(data).hexdigest(),
            stars=repo.stars,
            license=repo.license_spdx,
            license_source=repo.license_source,
            license_confidence=repo.license_confidence,
            ref=repo.ref,
        )


class ReadRepoArchives(beam.PTransform):
    """``(documents, rejects, archives)`` from repositories; archives are fingerprint tuples."""

    def __init__(self, limits: ArchiveLimits = ArchiveLimits()):
        super().__init__()
        self._limits = limits

    def expand(self, repos):
        read = (
            repos
            | "SpreadRepos" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadArchiveFn(self._limits)).with_outputs(
                REJECTS, ARCHIVES, main=KEPT
            )
        )
        documents = read[KEPT] | "SpreadDocuments" >> beam.Reshuffle()
        return documents, read[REJECTS], read[ARCHIVES]
