"""License stage: normalise declared licenses to SPDX, detect missing ones, enforce an allow-list.

The check runs per repository, before its archive's files are read, so a terabyte-scale run never
downloads the files of a repository it will drop. Declared licenses (``MIT``, ``mit``,
``apache-2.0``, ``MIT OR Apache-2.0``) are parsed with ``license-expression``'s SPDX licensing; a
repository whose manifest says null has its top-level LICENSE/LICENCE/COPYING files identified by
askalono (``pyaskalono``), and the detected license and its confidence travel on every document.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterable, Optional

import apache_beam as beam

from schemas.records import RepoSpec
from transforms.sources.archive_stream import ArchiveError, iter_license_files
from transforms.sources.http_fetch import FetchingOnWorker, FetchPolicy
from transforms.stats.counting import KEPT, REJECTS, count, reject

STAGE = "license"
DEFAULT_ALLOWED = (
    "mit",
    "apache-2.0",
    "bsd-2-clause",
    "bsd-3-clause",
    "isc",
    "unlicense",
    "cc0-1.0",
    "0bsd",
    "zlib",
)
DEFAULT_MIN_CONFIDENCE = 0.8
# askalono's nearest match can be a license derived from a common one by a few words: the Pixar
# license is Apache-2.0 with a modified section 6, and askalono names it for plain Apache-2.0
# texts (requests' LICENSE scores 0.985 as Pixar). The derived license is taken only when its
# distinguishing word is in the text.
KNOWN_CONFUSIONS = {"Pixar": ("Apache-2.0", "pixar")}


@functools.lru_cache(maxsize=1)
def _licensing():
    import license_expression

    return license_expression.get_spdx_licensing()


@functools.lru_cache(maxsize=4096)
def normalize_license(raw: Optional[str]) -> Optional[str]:
    """The canonical SPDX expression of a license string, or None when it is not a known license."""
    if raw is None or not raw.strip():
        return None
    try:
        expression = _licensing().parse(raw.strip(), validate=True, strict=True)
    except Exception:  # license_expression raises several error types for unknown keys/syntax
        return None
    return None if expression is None else expression.render()


def is_allowed(spdx_expression: str, allowed: frozenset) -> bool:
    """Whether an SPDX expression is satisfied by the allow-list (OR: any side, AND: both sides)."""
    expression = _licensing().parse(spdx_expression)
    return _satisfied(expression, allowed)


def _satisfied(node, allowed: frozenset) -> bool:
    operator = type(node).__name__
    if operator == "OR":
        return any(_satisfied(arg, allowed) for arg in node.args)
    if operator == "AND":
        return all(_satisfied(arg, allowed) for arg in node.args)
    return node.render() in allowed  # a symbol; "X WITH exception" is not in the allow-list


def normalize_allow_list(keys: Iterable[str]) -> frozenset:
    """The allow-list in SPDX form; an unknown key is a configuration error, not a silent no-op."""
    allowed = set()
    for key in keys:
        spdx = normalize_license(key)
        if spdx is None:
            raise ValueError(f"--licenses: unknown license key {key!r}")
        allowed.add(spdx)
    return frozenset(allowed)


def detect_license(texts: Iterable[str], min_confidence: float) -> tuple[Optional[str], float, str]:
    """Identify license files with askalono: (SPDX expression or None, confidence, detail).

    Several license files (LICENSE-MIT + LICENSE-APACHE) must all be acceptable, so they combine
    with AND and the confidence is the lowest of their scores.
    """
    import askalono

    found, scores, notes = [], [], []
    for name, text in texts:
        match = askalono.identify(text)
        score = float(match.score)
        license_name = match.name
        if license_name in KNOWN_CONFUSIONS:
            common, marker = KNOWN_CONFUSIONS[license_name]
            if marker not in text.lower():
                license_name = common
        notes.append(f"{name}={license_name}@{score:.3f}")
        if score < min_confidence:
            return None, score, "low_confidence " + " ".join(notes)
        spdx = normalize_license(license_name)
        if spdx is None:
            return None, score, "unmapped " + " ".join(notes)
        found.append(spdx)
        scores.append(score)
    if not found:
        return None, 0.0, "no_license_file"
    expression = " AND ".join(sorted(set(found)))
    return normalize_license(expression), min(scores), " ".join(notes)


def archive_reject_reason(err: ArchiveError) -> str:
    """``license_archive_unreadable`` for an archive whose retries were exhausted (the run's loss
    gate counts it), ``license_<reason>`` for a permanent failure (``license_archive_not_found``...)."""
    return "license_archive_unreadable" if err.reason == "archive_unreadable" else f"license_{err.reason}"


class _ResolveLicenseFn(FetchingOnWorker, beam.DoFn):
    def __init__(self, allowed: frozenset, min_confidence: float, max_license_bytes: int,
                 fetch: FetchPolicy = FetchPolicy()):
        super().__init__(fetch)
        self._allowed = allowed
        self._min_confidence = min_confidence
        self._max_license_bytes = max_license_bytes

    def process(self, repo: RepoSpec):
        if repo.license is not None:
            spdx = normalize_license(repo.license)
            if spdx is None:
                yield reject(repo.repo_name, STAGE, "license_unknown", repo.license)
                return
            source, confidence = "manifest", 1.0
        else:
            try:
                files = iter_license_files(repo.archive, self._max_license_bytes, self._fetcher,
                                           lambda err: count(STAGE, "archive_retries"))
                spdx, confidence, detail = detect_license(files, self._min_confidence)
            except ArchiveError as err:
                yield reject(repo.repo_name, STAGE, archive_reject_reason(err), str(err))
                return
            if spdx is None:
                yield reject(repo.repo_name, STAGE, "license_undetected", detail)
                return
            source = "detected"
            count(STAGE, "detected")
        if not is_allowed(spdx, self._allowed):
            yield reject(repo.repo_name, STAGE, "license_not_allowed", spdx)
            return
        count(STAGE, KEPT)
        yield dataclasses.replace(
            repo, license_spdx=spdx, license_source=source, license_confidence=confidence
        )


class FilterLicenses(beam.PTransform):
    """``(repos, rejects)``: repositories whose (declared or detected) license is allowed."""

    def __init__(self, allowed=DEFAULT_ALLOWED, min_confidence=DEFAULT_MIN_CONFIDENCE,
                 max_license_bytes=256 * 1024, fetch: FetchPolicy = FetchPolicy()):
        super().__init__()
        self._allowed = normalize_allow_list(allowed)
        self._min_confidence = min_confidence
        self._max_license_bytes = max_license_bytes
        self._fetch = fetch

    def expand(self, repos):
        resolved = repos | beam.ParDo(
            _ResolveLicenseFn(self._allowed, self._min_confidence, self._max_license_bytes, self._fetch)
        ).with_outputs(REJECTS, main=KEPT)
        return resolved[KEPT], resolved[REJECTS]
