"""The GitHub curation chain shared by the Mono pipeline and the tokenizer pipeline.

manifest -> star filter -> license filter -> read archives -> file selection -> code quality ->
exact dedup. The repository-level filters run before archives are read so a dropped repository is
never downloaded. Near-dedup plugs in after exact dedup (see ``pipelines/mono.py``).
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from transforms.sources.archive_reader import ReadRepoArchives
from transforms.sources.archive_stream import ArchiveLimits
from transforms.sources.http_fetch import FetchPolicy
from transforms.dedup.exact import ExactDedup
from transforms.filters.file_selection import SelectFiles
from transforms.filters.licenses import DEFAULT_ALLOWED, DEFAULT_MIN_CONFIDENCE, FilterLicenses
from transforms.filters.quality import FilterCodeQuality, QualityThresholds
from transforms.sources.repo_list import ReadRepoManifest
from transforms.filters.stars import FilterStars


@dataclasses.dataclass(frozen=True)
class CurationConfig:
    manifest: str
    licenses: tuple = DEFAULT_ALLOWED
    license_min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_stars: int = 0
    extensions: tuple = (".py",)
    limits: ArchiveLimits = ArchiveLimits()
    quality: QualityThresholds = QualityThresholds()
    fetch: FetchPolicy = FetchPolicy()  # retries, timeouts, the token's source (never its value)


# The rejects of a repository whose archive stayed unreadable after its retries (read, or license
# detection before it): what the run's loss gate counts.
UNREADABLE = (("read", "archive_unreadable"), ("license", "license_archive_unreadable"))
FIRST_UNREADABLE = 5


@dataclasses.dataclass
class Curated:
    documents: beam.PCollection
    rejects: beam.PCollection
    archives: beam.PCollection  # (repo, sha256, compressed bytes, status) per archive read
    unreadable: beam.PCollection  # one list: the first FIRST_UNREADABLE unreadable repositories, sorted


class FirstUnreadable(beam.PTransform):
    """Rejects -> one sorted list of the first repositories lost to unreadable archives, for the loss
    gate's message: a bounded combiner (Top.Smallest), never the whole collection on one worker."""

    def expand(self, rejects):
        return (
            rejects
            | "Unreadable" >> beam.Filter(lambda r: (r.stage, r.reason) in UNREADABLE)
            | "RepoName" >> beam.Map(lambda r: r.id)
            | "First" >> beam.combiners.Top.Smallest(FIRST_UNREADABLE)
        )


class CurateGithubRepos(beam.PTransform):
    """Pipeline root -> Curated(documents, rejects, archives)."""

    def __init__(self, config: CurationConfig):
        super().__init__()
        self._config = config

    def expand(self, pbegin):
        c = self._config
        repos, manifest_rejects = pbegin | "ReadManifest" >> ReadRepoManifest(c.manifest)
        repos, star_rejects = repos | "FilterStars" >> FilterStars(c.min_stars)
        repos, license_rejects = repos | "FilterLicenses" >> FilterLicenses(
            c.licenses, c.license_min_confidence, fetch=c.fetch
        )
        docs, read_rejects, archives = repos | "ReadArchives" >> ReadRepoArchives(c.limits, c.fetch)
        docs, select_rejects = docs | "SelectFiles" >> SelectFiles(c.extensions)
        docs, quality_rejects = docs | "FilterQuality" >> FilterCodeQuality(c.quality)
        docs, dedup_rejects = docs | "ExactDedup" >> ExactDedup()
        rejects = (
            manifest_rejects, star_rejects, license_rejects, read_rejects, select_rejects,
            quality_rejects, dedup_rejects,
        ) | "AllRejects" >> beam.Flatten()
        unreadable = (license_rejects, read_rejects) | "ArchiveRejects" >> beam.Flatten() | FirstUnreadable()
        return Curated(docs, rejects, archives, unreadable)
