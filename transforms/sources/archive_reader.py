"""Read repository archives into Documents, one repository per element, in parallel.

Repositories are redistributed (Reshuffle) before reading so archives are fetched by many workers,
and documents are redistributed after, so one huge repository does not pin later stages to the
worker that read it.

Rule for a corrupt or truncated archive: the repository is counted as a reject
(``archive_corrupt`` / ``archive_truncated`` / ``archive_too_large``...), and the files read in
full before the damage are kept (they passed tar's header checksums and were read to their
declared size); the member being read when the damage showed is dropped. Keeping them needs no
buffering, so memory stays bounded by one file whatever the repository's size.
"""

from __future__ import annotations

import hashlib

import apache_beam as beam

from schemas.records import Document, RepoSpec
from transforms.sources.archive_stream import ArchiveError, ArchiveLimits, ArchiveReport, iter_members
from transforms.stats.counting import KEPT, REJECTS, count, reject
from transforms.stats import histograms

STAGE = "read"
ARCHIVES = "archives"


def decode_source(data: bytes) -> tuple[str | None, str | None]:
    """(text, None) for a UTF-8 text file, or (None, reason) for binary or undecodable bytes."""
    if b"\x00" in data:
        return None, "binary"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "invalid_utf8"


class _ReadArchiveFn(beam.DoFn):
    def __init__(self, limits: ArchiveLimits):
        self._limits = limits

    def process(self, repo: RepoSpec):
        report = ArchiveReport()
        try:
            for member in iter_members(repo.archive, self._limits, report):
                doc_id = f"{repo.repo_name}:{member.path}"
                if member.reason is not None:
                    yield reject(doc_id, STAGE, member.reason, member.detail)
                    continue
                histograms.observe(histograms.DOCUMENT_BYTES_READ, len(member.data))
                text, reason = decode_source(member.data)
                if reason is not None:
                    yield reject(doc_id, STAGE, reason, f"{len(member.data)} bytes")
                    continue
                count(STAGE, KEPT)
                yield Document(
                    id=doc_id,
                    repo_name=repo.repo_name,
                    path=member.path,
                    text=text,
                    sha256=hashlib.sha256(member.data).hexdigest(),
                    stars=repo.stars,
                    license=repo.license_spdx,
                    license_source=repo.license_source,
                    license_confidence=repo.license_confidence,
                    ref=repo.ref,
                )
            status = "complete"
            count(STAGE, "archives_complete")
        except ArchiveError as err:
            status = err.reason
            yield reject(repo.repo_name, STAGE, err.reason, err.detail)
        yield beam.pvalue.TaggedOutput(
            ARCHIVES, (repo.repo_name, report.sha256, report.compressed_bytes, status)
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
