"""Pile set filter: keep documents of the selected ``pile_set_name`` sets.

A name outside the 22 official sets is a reject ``unknown_set`` whatever the selection: it is not
a Pile record, and no flag could select or exclude it. ``include`` empty means every set.
"""

from __future__ import annotations

from schemas.pile import PILE_SET_NAMES, canonical_set_names
from transforms.stats.counting import CountedFilter

STAGE = "set_filter"


class _SetCheck:
    def __init__(self, include, exclude):
        self.include = frozenset(canonical_set_names(include))
        self.exclude = frozenset(canonical_set_names(exclude))
        self.official = frozenset(PILE_SET_NAMES)

    def __call__(self, doc):
        if doc.subset not in self.official:
            return "unknown_set", str(doc.subset)
        if (self.include and doc.subset not in self.include) or doc.subset in self.exclude:
            return "set_excluded", doc.subset
        return None


def FilterSets(include=(), exclude=()) -> CountedFilter:  # noqa: N802 (a PTransform factory)
    """``(documents, rejects)`` keeping the documents of ``include`` (all if empty) minus ``exclude``."""
    return CountedFilter(STAGE, _SetCheck(include, exclude))
