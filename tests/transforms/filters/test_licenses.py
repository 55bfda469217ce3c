"""License stage: SPDX normalisation, allow-list logic, askalono detection on the real license
files of the sample archives, and FilterLicenses over the real sample manifest in a pipeline."""

from __future__ import annotations

import dataclasses
import pathlib

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import RepoSpec
from transforms.sources.archive_stream import iter_license_files
from transforms.filters.licenses import (
    DEFAULT_ALLOWED,
    DEFAULT_MIN_CONFIDENCE,
    FilterLicenses,
    detect_license,
    is_allowed,
    normalize_allow_list,
    normalize_license,
)

MAX_LICENSE_BYTES = 256 * 1024
ALLOWED = normalize_allow_list(DEFAULT_ALLOWED)


@pytest.mark.parametrize(
    "spellings",
    [
        ["MIT", "mit", " MIT ", "Mit"],
        ["Apache-2.0", "apache-2.0", "APACHE-2.0"],
        ["BSD-3-Clause", "bsd-3-clause"],
        ["MIT OR Apache-2.0", "mit or apache-2.0", "MIT  OR  apache-2.0"],
        ["GPL-3.0-only", "gpl-3.0-only", "GPL-3.0"],
    ],
)
def test_normalize_license_spellings_agree(spellings):
    normalized = {normalize_license(s) for s in spellings}
    assert len(normalized) == 1 and None not in normalized
    assert normalized == {spellings[0]}


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "other", "NOASSERTION", "NONE", "unknown", "MIT License", "Apache 2.0",
     "MIT/Apache-2.0", "MIT OR", "(MIT", "LicenseRef-proprietary"],
)
def test_normalize_license_unknown_is_none(raw):
    assert normalize_license(raw) is None


@pytest.mark.parametrize(
    "expression, allowed",
    [
        ("MIT", True),
        ("GPL-3.0-only", False),
        ("MPL-2.0", False),
        ("MIT OR GPL-3.0-only", True),
        ("GPL-3.0-only OR MIT", True),
        ("MIT AND Apache-2.0", True),
        ("MIT AND GPL-3.0-only", False),
        ("(MIT OR GPL-3.0-only) AND Apache-2.0", True),
        ("(MIT OR GPL-3.0-only) AND MPL-2.0", False),
        ("(GPL-2.0-only AND MIT) OR BSD-3-Clause", True),
        ("Apache-2.0 WITH LLVM-exception", False),
        ("Apache-2.0 WITH LLVM-exception OR MIT", True),
    ],
)
def test_is_allowed(expression, allowed):
    assert is_allowed(normalize_license(expression), ALLOWED) is allowed


def test_is_allowed_with_exception_on_the_list():
    allowed = normalize_allow_list(["apache-2.0 with llvm-exception"])
    assert is_allowed("Apache-2.0 WITH LLVM-exception", allowed)
    assert not is_allowed("Apache-2.0", allowed)


def test_normalize_allow_list():
    assert normalize_allow_list(["mit", "APACHE-2.0", "MIT"]) == frozenset({"MIT", "Apache-2.0"})
    assert "BSD-3-Clause" in ALLOWED and "GPL-3.0-only" not in ALLOWED
    for bad in (["mit", "not-a-license"], ["other"], [""]):
        with pytest.raises(ValueError, match="unknown license key"):
            normalize_allow_list(bad)
    with pytest.raises(ValueError):
        FilterLicenses(allowed=("mit", "permissive"))


@pytest.fixture(scope="module")
def undeclared(sample_repos):
    """The sample repositories whose manifest license is null, with their license files."""
    repos = [r for r in sample_repos if r.license is None]
    assert len(repos) == 4
    return {r.repo_name: iter_license_files(r.archive, MAX_LICENSE_BYTES) for r in repos}


@pytest.fixture(scope="module")
def detected(undeclared):
    return {name: detect_license(files, DEFAULT_MIN_CONFIDENCE) for name, files in undeclared.items()}


def test_detect_license_on_real_license_files(detected, sources):
    for name, (spdx, confidence, detail) in detected.items():
        expected = normalize_license(sources[name]["license (SPDX)"])
        assert spdx == expected, (name, detail)
        assert confidence >= 0.8, (name, detail)
        assert sources[name]["license file"] in detail
    assert {name: spdx for name, (spdx, _, _) in detected.items()} == {
        "kjd/idna": "BSD-3-Clause", "pytoolz/toolz": "BSD-3-Clause", "hukkin/tomli": "MIT",
        "Alir3z4/html2text": "GPL-3.0-only"}
    assert not is_allowed(detected["Alir3z4/html2text"][0], ALLOWED)
    assert all(is_allowed(detected[n][0], ALLOWED) for n in ("kjd/idna", "pytoolz/toolz", "hukkin/tomli"))


def test_detect_license_confidence_threshold_flips(undeclared, detected):
    _, confidence, _ = detected["pytoolz/toolz"]
    assert confidence < 1.0
    spdx, score, detail = detect_license(undeclared["pytoolz/toolz"], confidence + 1e-3)
    assert spdx is None and score == pytest.approx(confidence) and detail.startswith("low_confidence")


def test_detect_license_several_files_all_must_pass(undeclared, detected):
    files = undeclared["hukkin/tomli"] + undeclared["kjd/idna"]
    spdx, confidence, _ = detect_license(files, DEFAULT_MIN_CONFIDENCE)
    assert spdx == "BSD-3-Clause AND MIT"
    assert confidence == pytest.approx(min(detected["hukkin/tomli"][1], detected["kjd/idna"][1]))
    assert detect_license([], DEFAULT_MIN_CONFIDENCE) == (None, 0.0, "no_license_file")


def test_filter_licenses_pipeline_on_sample_manifest(sample_repos, sources, tmp_path, make_tar,
                                                     beam_helpers):
    new_pipeline, run, counters = beam_helpers
    no_license = make_tar("nolicense.tar.gz", [("p/setup.py", b"x = 1\n"), ("p/README", b"hi\n")])
    extra = [
        RepoSpec("some/other", 5, "other", str(no_license), None, "x:1"),
        RepoSpec("some/nolicense", 5, None, str(no_license), None, "x:2"),
        RepoSpec("some/missing", 5, None, str(tmp_path / "missing.tar.gz"), None, "x:3"),
        RepoSpec("some/dual", 5, "GPL-3.0-only OR mit", str(no_license), None, "x:4"),
    ]
    # Expected outcome from the real data: the SPDX license of each project (SOURCES.md).
    expected_kept, expected_rejects = [], []
    for repo in sample_repos:
        if repo.license is not None:
            spdx, source = normalize_license(repo.license), "manifest"
        else:
            spdx, source = normalize_license(sources[repo.repo_name]["license (SPDX)"]), "detected"
        if is_allowed(spdx, ALLOWED):
            expected_kept.append((repo.repo_name, spdx, source))
        else:
            expected_rejects.append((repo.repo_name, "license_not_allowed", spdx))
    assert len(expected_kept) == 12
    assert sorted(expected_rejects) == [("Alir3z4/html2text", "license_not_allowed", "GPL-3.0-only"),
                                        ("certifi/python-certifi", "license_not_allowed", "MPL-2.0")]
    expected_kept.append(("some/dual", "GPL-3.0-only OR MIT", "manifest"))

    p = new_pipeline()
    kept, rejects = p | beam.Create(sample_repos + extra) | FilterLicenses()
    assert_that(kept | beam.Map(lambda r: (r.repo_name, r.license_spdx, r.license_source)),
                equal_to(expected_kept), label="kept")
    assert_that(
        kept | beam.Filter(lambda r: not (
            (r.license_source == "manifest" and r.license_confidence == 1.0)
            or (r.license_source == "detected" and 0.8 <= r.license_confidence <= 1.0))),
        equal_to([]), label="confidence")
    # Everything but the license fields passes through unchanged.
    by_name = {r.repo_name: r for r in sample_repos}
    assert_that(
        kept | beam.Filter(lambda r: r.repo_name in by_name and dataclasses.replace(
            r, license_spdx=None, license_source=None, license_confidence=None) != by_name[r.repo_name]),
        equal_to([]), label="unchanged")
    assert_that(
        rejects | beam.Map(lambda r: (r.id, r.reason, r.detail) if r.reason == "license_not_allowed"
                           else (r.id, r.reason, r.detail.split(" ")[0].split(":")[0])),
        equal_to(expected_rejects + [
            ("some/other", "license_unknown", "other"),
            ("some/nolicense", "license_undetected", "no_license_file"),
            ("some/missing", "license_archive_not_found", "archive_not_found"),
        ]), label="rejects")
    assert_that(rejects | beam.Map(lambda r: r.stage), equal_to(["license"] * 5), label="stage")
    result = run(p)
    assert counters(result, "license") == {
        "kept": 13, "detected": 4, "license_not_allowed": 2, "license_unknown": 1,
        "license_undetected": 1, "license_archive_not_found": 1,
    }


def test_apache_text_that_askalono_calls_pixar_is_apache():
    """requests' LICENSE is plain Apache-2.0; askalono's nearest match is its Pixar derivative."""
    archives = pathlib.Path(__file__).resolve().parents[3] / "samples" / "mono" / "archives"
    archive = next(archives.glob("requests-*.tar.gz"))
    spdx, confidence, _ = detect_license(iter_license_files(str(archive), 256 * 1024), 0.8)
    assert spdx == "Apache-2.0" and confidence > 0.9
