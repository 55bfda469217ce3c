"""Benchmark decontamination: drop documents that contain a problem of an evaluation benchmark.

As BigCode decontaminated The Stack, a training file that contains a benchmark problem (prompt
and solution) is removed, so the model is not evaluated on what it was trained on. Benchmarks:
HumanEval and MTPB (``schemas.benchmarks``, the problems training's evaluation scores) and any
JSONL of ``{"id", "text"}`` given by path.

Matching is by long n-gram overlap (default 13 tokens). A document is contaminated by an item when
it contains at least half (``min_coverage``) of the item's distinct n-grams, as PaLM's
contamination analysis asked for 70% of a problem's 8-grams. One shared 13-gram is not enough: on
the samples, two real files share a few 13-grams with a benchmark and both are low-information
enumerations (an ``A`` .. ``Z`` list vs MTPB/18's Morse table, 12% of its grams; the number words
``zero`` .. ``nine`` vs HumanEval/19, 9%). A copy of the problem (prompt and solution), however
reformatted, has ~100% of its grams; the prompt alone two thirds (median; 148 of the 164 HumanEval
prompts alone are caught). A bare HumanEval solution (median 22 tokens of generic code) is not, by
itself, evidence of a copy (5 of 164 are caught).

Matching (normalisation, templates, short items, hashing): ``transforms.decontamination_matcher``.
"""

from __future__ import annotations

import json
import logging
from typing import Iterable, Iterator

import apache_beam as beam
import numpy as np

from schemas.benchmarks import humaneval_problems, mtpb_problems
from transforms.decontamination_matcher import build_index, find_contamination, token_bounds
from transforms.stats.counting import KEPT, REJECTS, count, reject

STAGE = "decontaminate"
REASON = "contamination"
DEFAULT_NGRAM = 13
MIN_ITEM_TOKENS = 8
DEFAULT_MIN_COVERAGE = 0.5
BENCHMARKS = ("humaneval", "mtpb")

_LOG = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Benchmark loaders: (item_id, text)
# --------------------------------------------------------------------------------------------


def load_humaneval() -> Iterator[tuple[str, str]]:
    """(``HumanEval/N``, prompt + canonical solution) for the 164 HumanEval problems."""
    for task_id, problem in humaneval_problems().items():
        yield task_id, problem["prompt"] + problem["canonical_solution"]


def load_mtpb() -> Iterator[tuple[str, str]]:
    """(``MTPB/<id>``, the problem's prompt turns joined by newlines) for the 115 MTPB problems.

    The turns are templates: their ``{placeholders}`` are kept (see
    ``decontamination_matcher.template_segments``).
    """
    for problem_id, problem in mtpb_problems().items():
        yield f"MTPB/{problem_id}", "\n".join(problem["prompts"])


def load_jsonl(path: str) -> Iterator[tuple[str, str]]:
    """(id, text) of each line ``{"id": str, "text": str}`` of a JSONL file on any Beam filesystem.

    Blank lines are skipped; ``.gz`` and other compressed files are read by their extension. A line
    that is not such an object raises ValueError naming the file and line.
    """
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as raw:
        data = raw.read()  # benchmarks are small; CompressedFile is not an io.BufferedIOBase
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except UnicodeDecodeError:
            raise ValueError(f"{where}: not UTF-8") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected an object with \"id\" and \"text\"")
        item_id, text = record.get("id"), record.get("text")
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"{where}: \"id\" must be a non-empty string, got {item_id!r}")
        if not isinstance(text, str):
            raise ValueError(f"{where}: \"text\" must be a string, got {type(text).__name__}")
        yield item_id, text


_LOADERS = {"humaneval": load_humaneval, "mtpb": load_mtpb}


def load_benchmarks(benchmarks: Iterable[str] = BENCHMARKS,
                    extra_paths: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Every item of the named benchmarks and of the extra JSONL files; ids must be unique."""
    items = []
    for name in benchmarks:
        if name not in _LOADERS:
            raise ValueError(f"unknown benchmark {name!r} (known: {', '.join(sorted(_LOADERS))})")
        items.extend(_LOADERS[name]())
    for path in extra_paths:
        items.extend(load_jsonl(path))
    seen = set()
    for item_id, _ in items:
        if item_id in seen:
            raise ValueError(f"benchmark item id {item_id!r} occurs twice")
        seen.add(item_id)
    return items


# --------------------------------------------------------------------------------------------
# Normalised tokens (the matcher hashes them without building them)
# --------------------------------------------------------------------------------------------


def tokens(text: str) -> list[str]:
    """The normalised tokens of a text (for inspection and tests; hashing never builds them)."""
    data = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    starts, ends = token_bounds(data)
    lowered = data.tobytes().lower()  # ASCII letters only, as in hashing
    return [lowered[s:e].decode("utf-8", "replace") for s, e in zip(starts, ends)]


# --------------------------------------------------------------------------------------------
# Beam
# --------------------------------------------------------------------------------------------


class _DecontaminateFn(beam.DoFn):
    """Keeps a document that holds no benchmark item; the index is built on the worker."""

    def __init__(self, benchmarks: tuple, extra_paths: tuple, ngram: int, min_coverage: float):
        self._benchmarks = benchmarks
        self._extra_paths = extra_paths
        self._ngram = ngram
        self._min_coverage = min_coverage
        self._index = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_index"] = None  # never shipped: rebuilt in setup()
        return state

    def setup(self):
        items = load_benchmarks(self._benchmarks, self._extra_paths)
        self._index = build_index(items, self._ngram, self._min_coverage, MIN_ITEM_TOKENS)
        if self._index.skipped:
            _LOG.warning("decontamination: %d benchmark items shorter than %d tokens are not "
                         "matched: %s", len(self._index.skipped), min(MIN_ITEM_TOKENS, self._ngram),
                         ", ".join(self._index.skipped))

    def process(self, doc):
        item_id = find_contamination(doc.text, self._index)
        if item_id is None:
            count(STAGE, KEPT)
            yield doc
        else:
            yield reject(doc.id, STAGE, REASON, item_id)


class Decontaminate(beam.PTransform):
    """Documents -> ``(kept, rejects)``: a document holding at least ``min_coverage`` of a benchmark
    item's distinct n-grams is rejected with reason ``contamination`` and the item's id as detail
    (the smallest id when it holds several items)."""

    def __init__(self, benchmarks: Iterable[str] = BENCHMARKS, extra_paths: Iterable[str] = (),
                 ngram: int = DEFAULT_NGRAM, min_coverage: float = DEFAULT_MIN_COVERAGE):
        super().__init__()
        self._benchmarks = tuple(benchmarks)
        self._extra_paths = tuple(extra_paths)
        unknown = [b for b in self._benchmarks if b not in _LOADERS]
        if unknown:
            raise ValueError(f"unknown benchmarks {unknown} (known: {', '.join(sorted(_LOADERS))})")
        if not isinstance(ngram, int) or ngram < 1:
            raise ValueError(f"ngram must be a positive int, got {ngram!r}")
        if not 0 < min_coverage <= 1:
            raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage!r}")
        self._ngram = ngram
        self._min_coverage = min_coverage

    def expand(self, docs):
        outputs = docs | beam.ParDo(
            _DecontaminateFn(self._benchmarks, self._extra_paths, self._ngram, self._min_coverage)
        ).with_outputs(REJECTS, main=KEPT)
        return outputs[KEPT], outputs[REJECTS]
