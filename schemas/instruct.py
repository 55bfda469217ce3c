"""Instruction-tuning task registry (seqio's Task/Mixture, FLAN's templates), with no Beam import.

A registry file (YAML or JSON) names tasks. A task has a name, a FLAN cluster, a source (JSONL or
Parquet on any fsspec filesystem, a Hugging Face ``datasets`` folder written by ``save_to_disk``,
or Sluice's own Mono corpus for code tasks), a field mapping from the source's records to the names
its templates use, its classification options, and ten templates: (input, target) format strings,
up to three of them inverse tasks.

This module says what a registry is, for whoever builds or reads a mixture: the tasks, what a
field mapping reads from a record, and the held-out splits its clusters and ``close_clusters``
give (their meaning, so they live with the registry). Parsing a registry file (every problem one
line naming the registry and the task) is ``schemas/instruct_parse.py``; the rendered example
record is ``schemas/instruct_example.py``; reading the sources, rendering and mixing are the
instruct transforms' (``transforms/instruct/``).

Training engineers never import this: the packed streams carry only token ids; the manifest names
the tasks and their realised proportions.
"""

from __future__ import annotations

import dataclasses
import json
import string
from typing import Any, Optional

TEMPLATES_PER_TASK = 10  # FLAN: ten templates per task
MAX_INVERSE = 3  # FLAN: up to three of them "turn the task around"
SPLITS = ("train", "eval")
FORMATS = ("jsonl", "parquet", "hf_disk", "mono")
EXTRACTORS = ("python_functions",)
# Fields a python_functions extractor gives each function (transforms/instruct/code_tasks.py).
CODE_FIELDS = ("name", "qualname", "signature", "docstring", "code", "path")
# The metrics a task may name (``metric:``; the first named is the task's primary score), computed
# by ``training/eval/metrics.py`` with the libraries FLAN's numbers come from:
#   accuracy     rank classification over the task's options (needs ``options``)
#   exact_match  SQuAD v1.1 normalisation, the best over the references
#   f1           SQuAD v1.1 token F1, the best over the references
#   bleu         sacrebleu corpus BLEU over a task's examples, all references
#   rouge_l      rouge-score ROUGE-L F-measure, the best over the references
METRICS = ("accuracy", "exact_match", "f1", "bleu", "rouge_l")
WILDCARD = "*"  # in a ``references`` path: every element of a list


class RegistryError(ValueError):
    """A registry that cannot be used; the message is one line naming the file and the task."""


class FieldError(ValueError):
    """One record lacks what a field mapping needs: ``reason`` is the counted reject reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------------
# Field mapping
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """How one template field is read from a source record.

    ``path`` is dotted keys and list indexes (``answers.0.text``). ``join`` joins a list value
    (``inner_join`` first joins each inner list, e.g. DART's triples). ``map`` relabels a value
    (``{"-1": "negative"}``; keys are the value as JSON would print it, ``true``/``false`` for
    booleans). ``choices`` + ``index`` pick one of several candidates by an index field, with
    ``index_map`` relabelling the index first (AQuA's ``"C"`` -> 2); ``choices`` alone gives the
    list of candidates (a task's per-example options).
    """

    name: str
    path: tuple = ()
    join: Optional[str] = None
    inner_join: Optional[str] = None
    map: Optional[dict] = None
    choices: tuple = ()  # paths of the candidates, or one path to a list of them
    index: tuple = ()
    index_map: Optional[dict] = None

    def top_keys(self) -> set:
        """The record keys this field reads (checked against the source at load)."""
        paths = [self.path, self.index, *self.choices]
        return {p[0] for p in paths if p}


def scalar_key(value: Any) -> str:
    """A value as a ``map``/``index_map`` key or a joined part: as JSON prints it, strings bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _get(record: Any, path: tuple, field: str) -> Any:
    value = record
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            raise FieldError("missing_field", f"{field}: no {'.'.join(map(str, path))}") from None
    if value is None:
        raise FieldError("missing_field", f"{field}: {'.'.join(map(str, path))} is null")
    return value


def field_value(record: dict, spec: FieldSpec) -> Any:
    """The field's value in a record: a string, or a list of strings (options); FieldError if not."""
    if spec.choices and not spec.index:
        values = [_get(record, c, spec.name) for c in spec.choices]
        if len(spec.choices) == 1:
            values = values[0]
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise FieldError("not_text", f"{spec.name}: choices must be non-empty strings")
        return list(values)
    if spec.choices:
        raw = _get(record, spec.index, spec.name)
        if spec.index_map is not None:
            if scalar_key(raw) not in spec.index_map:
                raise FieldError("unmapped_value", f"{spec.name}: index {raw!r} not in index_map")
            raw = spec.index_map[scalar_key(raw)]
        try:
            index = int(raw)
        except (TypeError, ValueError):
            raise FieldError("bad_index", f"{spec.name}: index {raw!r} is not an integer") from None
        candidates = (_get(record, spec.choices[0], spec.name) if len(spec.choices) == 1
                      else [_get(record, c, spec.name) for c in spec.choices])
        if not isinstance(candidates, list) or not 0 <= index < len(candidates):
            raise FieldError("bad_index", f"{spec.name}: index {index} outside the choices")
        value = candidates[index]
    else:
        value = _get(record, spec.path, spec.name)
    if isinstance(value, list):
        if spec.join is None:
            if not all(isinstance(v, str) for v in value):
                raise FieldError("not_text", f"{spec.name}: a list of non-strings needs 'join'")
            return list(value)
        parts = []
        for item in value:
            if isinstance(item, list):
                item = (spec.inner_join or " ").join(scalar_key(v) for v in item)
            parts.append(scalar_key(item))
        value = spec.join.join(parts)
    elif isinstance(value, dict):
        raise FieldError("not_text", f"{spec.name}: is an object")
    if spec.map is not None:
        key = scalar_key(value)
        if key not in spec.map:
            raise FieldError("unmapped_value", f"{spec.name}: {key!r} not in map")
        value = spec.map[key]
    text = value if isinstance(value, str) else scalar_key(value)
    if not text.strip():
        raise FieldError("empty_field", f"{spec.name}: empty")
    return text


def reference_values(record: dict, path: tuple, field: str = "references") -> list:
    """The values at a ``references`` path, ``*`` standing for every element of a list (a list at
    the end is every element too): strings, or scalars as JSON prints them. FieldError when the
    path reaches nothing or a value is not text."""
    values = [record]
    for i, part in enumerate(path):
        if part == WILDCARD:
            if not all(isinstance(v, list) for v in values):
                raise FieldError("missing_field", f"{field}: {'.'.join(map(str, path[:i]))} is not a list")
            values = [item for v in values for item in v]
        else:
            values = [_get(v, (part,), field) for v in values]
    flat = [item for v in values for item in (v if isinstance(v, list) else [v])]
    if not flat:
        raise FieldError("missing_field", f"{field}: {'.'.join(map(str, path))} is empty")
    if any(isinstance(v, (dict, list)) or v is None for v in flat):
        raise FieldError("not_text", f"{field}: {'.'.join(map(str, path))} holds a non-text value")
    return [scalar_key(v) for v in flat]


def example_fields(task: Task, record: dict) -> dict:
    """{field: value} of a record; FieldError when it lacks one."""
    return {name: field_value(record, spec) for name, spec in task.fields.items()}


# --------------------------------------------------------------------------------------------
# Templates and tasks
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Template:
    input: str
    target: str
    inverse: bool = False

    def fields(self) -> tuple[set, set]:
        return template_fields(self.input), template_fields(self.target)


def template_fields(text: str) -> set:
    """The ``{name}`` fields of a format string; ValueError on anything but plain names."""
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"placeholder {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}} must be a plain {{field_name}}")
        names.add(name)
    return names


@dataclasses.dataclass(frozen=True)
class Source:
    format: str
    splits: dict  # split -> path or glob (jsonl, parquet), split name (hf_disk), or manifest (mono)
    path: Optional[str] = None  # hf_disk: the save_to_disk folder
    id_field: Optional[str] = None  # a record key holding a unique id; else "<file>:<row>"
    extract: Optional[str] = None  # "python_functions": code tasks from documents' text
    eval_fraction: float = 0.0  # extracted examples: share sent to the eval split by hash(id)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    cluster: str
    source: Source
    fields: dict  # name -> FieldSpec
    templates: tuple
    options: tuple = ()  # fixed classification options
    options_field: Optional[str] = None  # or a field whose value lists each example's options
    note: str = ""  # e.g. why a task is evaluation-only
    metrics: tuple = ()  # names from METRICS, the first the primary score; required when evaluated
    references: tuple = ()  # path (``*`` wildcards) of every reference answer; () = the target alone

    @property
    def trainable(self) -> bool:
        return "train" in self.source.splits

    @property
    def has_eval(self) -> bool:
        return "eval" in self.source.splits or self.source.eval_fraction > 0

    @property
    def has_options(self) -> bool:
        return bool(self.options) or self.options_field is not None

    @property
    def forward_templates(self) -> tuple:
        """Indexes of the templates that pose the task itself: what evaluation renders, each one."""
        return tuple(i for i, t in enumerate(self.templates) if not t.inverse)

    @property
    def answer_field(self) -> Optional[str]:
        """The one field every forward target fills (a reference replaces it); None if there is none."""
        used = {frozenset(self.templates[i].fields()[1]) for i in self.forward_templates}
        if len(used) == 1:
            only = next(iter(used))
            if len(only) == 1:
                return next(iter(only))
        return None


@dataclasses.dataclass(frozen=True)
class Registry:
    path: str
    sha256: str
    tasks: tuple
    close_clusters: dict  # cluster -> clusters held out with it (FLAN's "too close" rule)

    def task(self, name: str) -> Task:
        return {t.name: t for t in self.tasks}[name]

    @property
    def clusters(self) -> list:
        return sorted({t.cluster for t in self.tasks})


# --------------------------------------------------------------------------------------------
# Held-out splits: what the clusters and close_clusters mean
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Split:
    """One mixture to build: the training tasks, and the held-out tasks' evaluation set."""

    name: str  # "all", "holdout-<cluster>", "holdout-<a>+<b>..." or, in a cluster ladder, "clusters-<k>"
    holdouts: tuple  # the held-out clusters, whose tasks are evaluated (sorted; () for "all")
    excluded_clusters: tuple  # the held-out clusters and their close clusters: never trained on
    train_tasks: tuple
    eval_tasks: tuple
    train_clusters: Optional[tuple] = None  # a cluster ladder's split: the first k of LADDER order

    @property
    def holdout(self) -> Optional[str]:
        """The held-out cluster when there is one (``holdout-<cluster>``), else None."""
        return self.holdouts[0] if len(self.holdouts) == 1 else None

    @property
    def k(self) -> Optional[int]:
        """A cluster ladder's rung: how many clusters it trains on."""
        return None if self.train_clusters is None else len(self.train_clusters)


def holdout_name(holdouts) -> str:
    return "all" if not holdouts else "holdout-" + "+".join(holdouts)


def ladder_order(registry: Registry, excluded) -> tuple:
    """The trainable clusters outside ``excluded``, in the order a cluster ladder adds them: as FLAN's
    cluster ablation (section 4.1), the cluster with the most trainable tasks first; a tie goes to the
    cluster that appears first in the registry's task list. Fixed by the registry alone."""
    counts: dict = {}
    for task in registry.tasks:  # dicts keep first appearance
        if task.trainable and task.cluster not in excluded:
            counts[task.cluster] = counts.get(task.cluster, 0) + 1
    first = {cluster: i for i, cluster in enumerate(counts)}
    return tuple(sorted(counts, key=lambda c: (-counts[c], first[c])))


def _split(registry: Registry, name: str, holdouts: tuple, train_clusters: Optional[tuple] = None) -> Split:
    excluded = tuple(sorted({c for h in holdouts for c in (h, *registry.close_clusters.get(h, ()))}))
    train = tuple(t.name for t in registry.tasks if t.trainable and t.cluster not in excluded
                  and (train_clusters is None or t.cluster in train_clusters))
    evals = tuple(t.name for t in registry.tasks if t.cluster in holdouts and t.has_eval)
    return Split(name=name, holdouts=holdouts, excluded_clusters=excluded, train_tasks=train, eval_tasks=evals,
                 train_clusters=train_clusters)


def check_holdouts(registry: Registry, holdouts) -> tuple:
    """The held-out clusters (one name or several), sorted; RegistryError naming one that is no
    task's cluster or one named twice."""
    holdouts = (holdouts,) if isinstance(holdouts, str) else tuple(holdouts)
    clusters = registry.clusters
    for cluster in holdouts:
        if cluster not in clusters:
            raise RegistryError(f"{cluster!r} is no task's cluster (clusters: {', '.join(clusters)})")
    twice = sorted({c for c in holdouts if holdouts.count(c) > 1})
    if twice:
        raise RegistryError(f"{', '.join(twice)} named more than once")
    return tuple(sorted(holdouts))


def plan_splits(registry: Registry, holdouts=(), all_holdouts: bool = False, cluster_ladder: bool = False) -> list:
    """The mixtures to build: one with every trainable task; one leaving ``holdouts`` (one cluster's
    name or several; each with its close clusters) out; one per cluster (``all_holdouts``); or
    (``cluster_ladder``) the cluster ladder: ``clusters-<k>`` for k = 1..K, each holding the same
    clusters out and training on the first k of the K other trainable clusters in ``ladder_order``."""
    holdouts = check_holdouts(registry, holdouts)
    clusters = registry.clusters
    if all_holdouts:
        return [_split(registry, holdout_name((c,)), (c,)) for c in clusters]
    if not cluster_ladder:
        return [_split(registry, holdout_name(holdouts), holdouts)]
    if not holdouts:
        raise RegistryError("a cluster ladder needs held-out clusters")
    order = ladder_order(registry, _split(registry, "", holdouts).excluded_clusters)
    if not order:
        raise RegistryError(f"no trainable cluster is left to train on once {', '.join(holdouts)} (and their"
                            " close clusters) are held out")
    return [_split(registry, f"clusters-{k}", holdouts, order[:k]) for k in range(1, len(order) + 1)]
