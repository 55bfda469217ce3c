"""The Pile curation chain shared by the NL pipeline and the tokenizer pipeline.

read files -> set filter -> exact dedup (on by default; CodeGen deduplicated the Pile exactly,
not by near-duplicates). Near-dedup plugs in after it (see ``pipelines/nl.py``). Each stage's
output is also tallied per set for the manifest's ``sets`` section.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam

from transforms.dedup.exact import STAGE as EXACT_DEDUP_STAGE
from transforms.dedup.exact import ExactDedup
from transforms.sources.pile_reader import DEFAULT_MAX_LINE_BYTES, ReadPile
from transforms.sources.pile_reader import STAGE as READ_STAGE
from transforms.filters.pile_sets import STAGE as SET_FILTER_STAGE
from transforms.filters.pile_sets import FilterSets
from transforms.stats.set_stats import TallyBySet


@dataclasses.dataclass(frozen=True)
class PileConfig:
    inputs: tuple  # file patterns (globs or paths, any Beam filesystem)
    include_sets: tuple = ()  # official names; empty = all
    exclude_sets: tuple = ()
    on_damage: str = "fail"
    exact_dedup: bool = True
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


@dataclasses.dataclass
class CuratedPile:
    documents: beam.PCollection
    rejects: beam.PCollection
    files: beam.PCollection  # one report dict per input file
    tallies: list  # per-set tally PCollections, one per boundary
    boundaries: list  # the boundaries' names, in pipeline order


class CuratePile(beam.PTransform):
    """Pipeline root -> CuratedPile(documents, rejects, files, tallies, boundaries)."""

    def __init__(self, config: PileConfig):
        super().__init__()
        self._config = config

    def expand(self, pbegin):
        c = self._config
        docs, read_rejects, files = pbegin | "ReadPile" >> ReadPile(c.inputs, c.on_damage, c.max_line_bytes)
        tallies = [docs | "TallyRead" >> TallyBySet(READ_STAGE)]
        docs, set_rejects = docs | "FilterSets" >> FilterSets(c.include_sets, c.exclude_sets)
        tallies.append(docs | "TallySets" >> TallyBySet(SET_FILTER_STAGE))
        rejects = [read_rejects, set_rejects]
        boundaries = [READ_STAGE, SET_FILTER_STAGE]
        if c.exact_dedup:
            docs, dedup_rejects = docs | "ExactDedup" >> ExactDedup()
            tallies.append(docs | "TallyExactDedup" >> TallyBySet(EXACT_DEDUP_STAGE))
            rejects.append(dedup_rejects)
            boundaries.append(EXACT_DEDUP_STAGE)
        rejects = rejects | "AllRejects" >> beam.Flatten()
        return CuratedPile(docs, rejects, files, tallies, boundaries)
