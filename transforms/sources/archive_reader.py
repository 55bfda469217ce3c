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
withheld with them, and emitted when the archive completes or fails for good.

Retries: a transient failure (a timeout, a reset, HTTP 429/5xx, a body cut short: see
``http_fetch``) reads the archive again from its start, at most ``FetchPolicy.retries`` times,
counted ``archive_retries``. Everything a failed attempt read (withheld documents, member rejects,
its counts) is thrown away with it, so no document and no reject is ever emitted twice. An archive
whose retries are exhausted is the reject ``archive_unreadable`` (the run's loss gate counts them).
"""

from __future__ import annotations

import hashlib
import tempfile

import apache_beam as beam

from schemas.records import Document, RepoSpec
from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, ArchiveReport, iter_members
from transforms.sources.http_fetch import FetchingOnWorker, Fetcher, FetchPolicy
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
    """What one attempt read of an archive, in archive order, kept until it is known whether the
    archive is whole: files (path, data) and member rejects (path, reason, detail), their bytes
    spooled to a temporary file past ``SPOOL_BYTES`` so memory stays bounded whatever the size."""

    def __init__(self):
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        # (path, reject reason or None, spooled length, the member's bytes when its data was read)
        self._entries: list[tuple[str, str | None, int, int | None]] = []
        self.documents = 0

    def add(self, path: str, data: bytes) -> None:
        self._spool.write(data)
        self._entries.append((path, None, len(data), len(data)))
        self.documents += 1

    def add_reject(self, path: str, reason: str, detail: str, size: int | None = None) -> None:
        data = detail.encode("utf-8", errors="replace")
        self._spool.write(data)
        self._entries.append((path, reason, len(data), size))

    def __iter__(self):
        """(path, reason or None, data or detail, bytes read or None) in the order read."""
        self._spool.seek(0)
        for path, reason, length, size in self._entries:
            data = self._spool.read(length)
            yield path, reason, data if reason is None else data.decode("utf-8"), size

    def close(self):
        self._spool.close()


def _read_attempt(repo: RepoSpec, limits: ArchiveLimits, fetcher: Fetcher):
    """One read of the archive from its start: (withheld, report, error or None). A transient
    ArchiveError is raised (after closing what was read) so the caller's retry starts afresh."""
    report = ArchiveReport()
    withheld = _Withheld()
    try:
        for member in iter_members(repo.archive, limits, report, fetcher=fetcher):
            if member.reason is not None:
                withheld.add_reject(member.path, member.reason, member.detail)
                continue
            _, reason = decode_source(member.data)
            if reason is not None:
                withheld.add_reject(member.path, reason, f"{len(member.data)} bytes", len(member.data))
                continue
            withheld.add(member.path, member.data)
        return withheld, report, None
    except ArchiveError as err:
        if err.transient:
            withheld.close()
            raise
        return withheld, report, err


class _ReadArchiveFn(FetchingOnWorker, beam.DoFn):
    def __init__(self, limits: ArchiveLimits, fetch: FetchPolicy = FetchPolicy()):
        super().__init__(fetch)
        self._limits = limits

    def process(self, repo: RepoSpec):
        def retried(err):
            count(STAGE, "archive_retries")

        try:
            withheld, report, error = self._fetcher.retrying(
                lambda: _read_attempt(repo, self._limits, self._fetcher), retried)
        except ArchiveError as err:  # transient, retries exhausted: nothing of it was kept
            withheld, report, error = None, ArchiveReport(), err
        try:
            yield from self._emit(repo, withheld, error)
        finally:
            if withheld is not None:
                withheld.close()
        status = "complete" if error is None else error.reason
        yield beam.pvalue.TaggedOutput(
            ARCHIVES, (repo.repo_name, report.sha256, report.compressed_bytes, status)
        )

    def _emit(self, repo: RepoSpec, withheld, error):
        """The last attempt's member rejects, and its documents when the archive is whole; else the
        archive's reject, its documents withdrawn (counted)."""
        for path, reason, value, size in withheld or ():
            if size is not None:
                histograms.observe(histograms.DOCUMENT_BYTES_READ, size)
            if reason is not None:
                yield reject(f"{repo.repo_name}:{path}", STAGE, reason, value)
            elif error is None:
                count(STAGE, KEPT)
                yield self._document(repo, path, value)
        if error is None:
            count(STAGE, "archives_complete")
            return
        withdrawn = withheld.documents if withheld is not None else 0
        if withdrawn:
            count(STAGE, "withdrawn", withdrawn)
        detail = f"{error.detail}; {withdrawn} documents withdrawn" if withdrawn else error.detail
        yield reject(repo.repo_name, STAGE, error.reason, detail)

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

    def __init__(self, limits: ArchiveLimits = ArchiveLimits(), fetch: FetchPolicy = FetchPolicy()):
        super().__init__()
        self._limits = limits
        self._fetch = fetch

    def expand(self, repos):
        read = (
            repos
            | "SpreadRepos" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadArchiveFn(self._limits, self._fetch)).with_outputs(
                REJECTS, ARCHIVES, main=KEPT
            )
        )
        documents = read[KEPT] | "SpreadDocuments" >> beam.Reshuffle()
        return documents, read[REJECTS], read[ARCHIVES]
