"""A Mono manifest from the github_repos dataset: the query's rows to checked, sorted manifest lines.

The rows come from ``sql/github_repos_mono_manifest.sql`` (``github_sql.MONO_MANIFEST``), one per
repository: ``repo_name, license, stars, ref, files``. Each becomes one line of the Mono manifest
format (``repo_list.parse_manifest_line``) with GitHub's archive URL at the recorded ref, and each
line is checked here the way Mono will check it (the manifest parser, then the license filter's
normalisation and allow-list), so a built manifest never feeds Mono a line it rejects; a row that
fails is counted with its reason and first repositories, never dropped unseen.

``--max_repos N`` keeps the N repositories with the smallest ``sha256(f"{seed}:{repo_name}")``:
a choice that depends only on the seed and the names, not on the order rows arrive in, kept with
``heapq.nsmallest`` while the rows stream by, so memory is O(N) whatever the dataset's size.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import heapq
import json
import urllib.parse
from typing import Iterable, Iterator

from transforms.sources import github_sql
from transforms.sources.repo_list import parse_manifest_line

ARCHIVE_URL = "https://codeload.github.com/{repo}/tar.gz/{ref}"
SHOWN_SKIPPED = 10  # repositories named per skip reason in the builder's own manifest


@dataclasses.dataclass(frozen=True)
class ManifestParams:
    """The values of the manifest query's named parameters."""

    languages: tuple  # keys of github_sql.DEFAULT_EXTENSIONS
    licenses: tuple  # values of licenses.license (github_sql.github_license_keys)
    min_stars: int = 0
    min_files: int = 1

    def named(self) -> dict:
        extensions = {ext for lang in self.languages for ext in github_sql.DEFAULT_EXTENSIONS[lang]}
        return {"extensions": sorted(extensions), "licenses": sorted(self.licenses),
                "min_stars": self.min_stars, "min_files": self.min_files}


def archive_url(repo_name: str, ref: str) -> str:
    """GitHub's tar.gz archive of ``repo_name`` at ``ref`` (a branch, tag, ``refs/heads/...`` or a
    commit), each part URL-quoted so a ref holding ``#``, ``?``, ``%`` or a space stays one path."""
    return ARCHIVE_URL.format(repo=urllib.parse.quote(repo_name, safe="/"),
                              ref=urllib.parse.quote(ref, safe="/"))


def manifest_record(row: dict) -> dict:
    """One query row as a Mono manifest record, in the sample manifest's key order."""
    return {"repo_name": row["repo_name"], "stars": row["stars"], "license": row["license"],
            "archive": archive_url(row["repo_name"], row["ref"]), "ref": row["ref"]}


def manifest_line(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def selection_key(seed: int, repo_name: str) -> str:
    return hashlib.sha256(f"{seed}:{repo_name}".encode("utf-8")).hexdigest()


def snapshot_rows(snapshot_dir: str, params: ManifestParams, stars_table: str = github_sql.STARS_PLACEHOLDER,
                  batch_rows: int = 10_000) -> Iterator[dict]:
    """The manifest query's rows over a local snapshot (DuckDB), streamed one batch at a time."""
    con = github_sql.snapshot_connection(snapshot_dir, stars_table=stars_table, query=github_sql.MONO_MANIFEST)
    try:
        for batch in github_sql.stream_snapshot_query(con, github_sql.MONO_MANIFEST, params.named(),
                                                      stars_table, batch_rows):
            yield from batch.to_pylist()
    finally:
        con.close()


class ManifestLines:
    """Rows -> the manifest's lines (bytes), sorted by repo name, counting as they stream by.

    ``allowed`` is the SPDX allow-list (``normalize_allow_list``) that Mono's license filter will
    apply to each line's license; after iterating, ``rows_read``, ``eligible`` (rows that passed
    the checks), ``written`` and ``skipped`` ({reason: {count, first}}) describe the run.
    """

    def __init__(self, allowed: frozenset, max_repos: int | None = None, seed: int = 0,
                 manifest_path: str = "manifest.jsonl"):
        self.allowed = frozenset(allowed)
        self.max_repos = max_repos
        self.seed = seed
        self.manifest_path = manifest_path
        self.rows_read = self.eligible = self.written = 0
        self._skipped = collections.Counter()
        self._first = collections.defaultdict(list)

    @property
    def skipped(self) -> dict:
        return {reason: {"count": n, "first": self._first[reason]} for reason, n in sorted(self._skipped.items())}

    def __call__(self, rows: Iterable[dict]) -> Iterator[bytes]:
        records = self._checked(rows)
        if self.max_repos is not None:
            chosen = heapq.nsmallest(self.max_repos, records,
                                     key=lambda record: selection_key(self.seed, record["repo_name"]))
            records = iter(sorted(chosen, key=lambda record: record["repo_name"]))
        for record in self._ascending(records):
            self.written += 1
            yield manifest_line(record)

    def _skip(self, reason: str, repo_name) -> None:
        self._skipped[reason] += 1
        if len(self._first[reason]) < SHOWN_SKIPPED:
            self._first[reason].append(repo_name if isinstance(repo_name, str) else repr(repo_name))

    def _checked(self, rows: Iterable[dict]) -> Iterator[dict]:
        for row in rows:
            self.rows_read += 1
            reason = self._problem(row)
            if reason:
                self._skip(reason, row.get("repo_name"))
                continue
            self.eligible += 1
            yield manifest_record(row)

    def _problem(self, row: dict) -> str | None:
        """Why Mono would reject the row's line (the manifest parser's reason, or the license
        filter's ``license_unknown`` / ``license_not_allowed``), or None."""
        from transforms.filters.licenses import is_allowed, normalize_license

        if not isinstance(row.get("repo_name"), str) or not isinstance(row.get("ref"), str) or not row["ref"]:
            return "bad_ref" if isinstance(row.get("repo_name"), str) else "bad_repo_name"
        try:
            parse_manifest_line(manifest_line(manifest_record(row)), "github_manifest", self.manifest_path)
        except ValueError as err:
            return str(err).split(":", 1)[0]
        spdx = normalize_license(row["license"])
        if spdx is None:
            return "license_unknown"
        return None if is_allowed(spdx, self.allowed) else "license_not_allowed"

    @staticmethod
    def _ascending(records: Iterable[dict]) -> Iterator[dict]:
        """The records, checked to be in strictly increasing repo-name order: the query sorts
        them, and a repeated or unordered name would make the manifest depend on the engine."""
        previous = None
        for record in records:
            name = record["repo_name"]
            if previous is not None and name <= previous:
                raise ValueError(f"the query's rows are not in increasing repo_name order: {name!r}"
                                 f" after {previous!r}")
            previous = name
            yield record
