"""Star filter: keep repositories with at least ``min_stars`` stars (the Pile's GitHub used > 100).

Runs per repository, before archives are read, so dropped repositories cost no download.
"""

from __future__ import annotations

from transforms.stats.counting import CountedFilter

STAGE = "stars"


def star_verdict(stars, min_stars: int):
    """None when ``stars`` passes ``--min_stars``, else (reason, detail). The one star rule, for
    Mono's repositories and Multi's rows alike: an unknown count never passes a threshold above 0
    (it is not taken for 0, nor for enough)."""
    if min_stars <= 0:
        return None
    if stars is None:
        return "stars_unknown", ""
    if stars < min_stars:
        return "too_few_stars", str(stars)
    return None


class _StarCheck:
    def __init__(self, min_stars: int):
        self.min_stars = min_stars

    def __call__(self, repo):
        return star_verdict(repo.stars, self.min_stars)


def _repo_id(repo):
    return repo.repo_name


def FilterStars(min_stars: int) -> CountedFilter:  # noqa: N802 (a PTransform factory)
    """``(repos, rejects)`` keeping repositories with ``stars >= min_stars``."""
    return CountedFilter(STAGE, _StarCheck(min_stars), record_id=_repo_id)
