"""Read the GitHub repository manifest (JSON Lines) into RepoSpec records.

Lines are read through Beam's fileio so the manifest may be local or on any Beam filesystem; a
malformed line becomes a counted reject that names its file and line number, never a crash, and a
repository listed twice is kept once (its first line), the other copies ``duplicate_repo`` rejects.
"""

from __future__ import annotations

import posixpath
import re

import apache_beam as beam
from apache_beam.io import fileio

from schemas.json_lines import load_json_line
from schemas.records import RepoSpec, is_int64
from transforms.stats.counting import KEPT, REJECTS, count, reject

STAGE = "manifest"
_REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def resolve_archive(archive: str, manifest_path: str) -> str:
    """An archive path as written in the manifest, made absolute against the manifest's folder."""
    if _URL.match(archive) or archive.startswith("/"):
        return archive
    folder = manifest_path.rsplit("/", 1)[0] if "/" in manifest_path else "."
    if _URL.match(folder):
        scheme, rest = folder.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, archive))}"
    return posixpath.normpath(posixpath.join(folder, archive))


def _shown(value, limit: int = 100) -> str:
    """A field's value as a reject's detail, cut to ``limit`` characters (a line may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_manifest_line(line: bytes, source: str, manifest_path: str) -> RepoSpec:
    """One manifest line to a RepoSpec; raises ValueError with a short reason when malformed."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"invalid_utf8: {err.reason}") from None
    record = load_json_line(text)
    if not isinstance(record, dict):
        raise ValueError("not_an_object")
    repo_name = record.get("repo_name")
    if not isinstance(repo_name, str) or not _REPO_NAME.fullmatch(repo_name):
        raise ValueError(f"bad_repo_name: {_shown(repo_name)}")
    stars = record.get("stars")
    if stars is not None and not (is_int64(stars) and stars >= 0):  # 10**30, NaN, true: rejects
        raise ValueError(f"bad_stars: {_shown(stars)}")
    license_ = record.get("license")
    if license_ is not None and not isinstance(license_, str):
        raise ValueError(f"bad_license: {_shown(license_)}")
    archive = record.get("archive")
    if not isinstance(archive, str) or not archive:
        raise ValueError(f"bad_archive: {_shown(archive)}")
    ref = record.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise ValueError(f"bad_ref: {_shown(ref)}")
    return RepoSpec(
        repo_name=repo_name,
        stars=stars,
        license=license_,
        archive=resolve_archive(archive, manifest_path),
        ref=ref,
        source=source,
    )


class _ParseManifestFn(beam.DoFn):
    """A manifest file -> ``(repo_name, ((path, line number), RepoSpec))`` per valid line, rejects."""

    def process(self, readable_file):
        path = readable_file.metadata.path
        name = path.rsplit("/", 1)[-1]
        with readable_file.open() as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                source = f"{name}:{number}"
                try:
                    spec = parse_manifest_line(line, source, path)
                except ValueError as err:
                    reason, _, detail = str(err).partition(": ")
                    yield reject(f"manifest:{source}", STAGE, reason, detail)
                    continue
                yield spec.repo_name, ((path, number), spec)


class _FirstCopyFn(beam.DoFn):
    """One repository's copies -> the first by (manifest path, line number); the others are
    ``duplicate_repo`` rejects. Two passes over the grouped copies (Beam's are re-iterable), so
    even a name repeated on millions of lines is never held in memory."""

    def process(self, keyed):
        _, copies = keyed
        first_at, first = min(copies, key=lambda copy: copy[0])
        count(STAGE, KEPT)
        yield first
        skipped = False  # by position, not identity: a runner may decode the copies anew per pass
        for position, spec in copies:
            if position == first_at and not skipped:
                skipped = True
                continue
            yield reject(f"manifest:{spec.source}", STAGE, "duplicate_repo", f"first at {first.source}")


class ReadRepoManifest(beam.PTransform):
    """``(repos, rejects)`` from a manifest file pattern.

    A ``repo_name`` is kept once: its first valid line, ordered by manifest path then line number,
    whatever the runner's order or worker count; every later copy is a ``duplicate_repo`` reject,
    so document ids (``<repo_name>:<path>``) are unique by construction. Grouping by name also
    redistributes the repositories for reading.
    """

    def __init__(self, pattern: str):
        super().__init__()
        self._pattern = pattern

    def expand(self, pbegin):
        parsed = (
            pbegin
            | "Match" >> fileio.MatchFiles(self._pattern)
            | "Open" >> fileio.ReadMatches()
            | "Parse" >> beam.ParDo(_ParseManifestFn()).with_outputs(REJECTS, main=KEPT)
        )
        firsts = (
            parsed[KEPT]
            | "ByName" >> beam.GroupByKey()
            | "FirstCopy" >> beam.ParDo(_FirstCopyFn()).with_outputs(REJECTS, main=KEPT)
        )
        rejects = (parsed[REJECTS], firsts[REJECTS]) | "Rejects" >> beam.Flatten()
        return firsts[KEPT], rejects
