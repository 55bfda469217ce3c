"""Star filter over the real sample manifest: kept at or above the threshold, counted rejects."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Reject
from transforms.filters.stars import FilterStars


def test_filter_stars_pipeline(sample_repos, beam_helpers):
    new_pipeline, run, counters = beam_helpers
    unknown = dataclasses.replace(sample_repos[0], repo_name="nobody/unknown", stars=None)
    repos = sample_repos + [unknown]
    threshold = 1000
    boundary = [r for r in sample_repos if r.stars == threshold]
    assert boundary, "the sample manifest has a repository with exactly 1000 stars"
    below = [r for r in sample_repos if r.stars < threshold]
    assert len(below) >= 3

    p = new_pipeline()
    kept, rejects = p | "Repos" >> beam.Create(repos) | "Stars" >> FilterStars(threshold)
    assert_that(kept, equal_to([r for r in sample_repos if r.stars >= threshold]), label="kept")
    assert_that(
        rejects,
        equal_to([Reject(r.repo_name, "stars", "too_few_stars", str(r.stars)) for r in below]
                 + [Reject("nobody/unknown", "stars", "stars_unknown", "")]),
        label="rejects")
    # min_stars <= 0 switches the filter off, unknown star counts included.
    kept_all, rejects_none = p | "Repos0" >> beam.Create(repos) | "Stars0" >> FilterStars(0)
    assert_that(kept_all, equal_to(repos), label="kept_all")
    assert_that(rejects_none, equal_to([]), label="rejects_none")
    result = run(p)
    assert counters(result, "stars") == {
        "kept": len(sample_repos) - len(below) + len(repos),
        "too_few_stars": len(below),
        "stars_unknown": 1,
    }

