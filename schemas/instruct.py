"""Instruction-tuning task registry (seqio's Task/Mixture, FLAN's templates), with no Beam import.

A registry file (YAML or JSON) names tasks. A task has a name, a FLAN cluster, a source (JSONL or
Parquet on any fsspec filesystem, a Hugging Face ``datasets`` folder written by ``save_to_disk``,
or Sluice's own Mono corpus for code tasks), a field mapping from the source's records to the names
its templates use, its classification options, and ten templates: (input, target) format strings,
up to three of them inverse tasks. Everything is checked when the registry loads, so a template
naming a missing field or a source without a mapped field fails before any job starts, with one
line naming the registry, the task and the problem.

Training engineers never import this: the packed streams carry only token ids; the manifest names
the tasks and their realised proportions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import string
from typing import Any, Iterator, Optional

TEMPLATES_PER_TASK = 10  # FLAN: ten templates per task
MAX_INVERSE = 3  # FLAN: up to three of them "turn the task around"
SPLITS = ("train", "eval")
FORMATS = ("jsonl", "parquet", "hf_disk", "mono")
EXTRACTORS = ("python_functions",)
# Fields a python_functions extractor gives each function (transforms/instruct/code_tasks.py).
CODE_FIELDS = ("name", "qualname", "signature", "docstring", "code", "path")
OPTIONS_HEADER = "OPTIONS:"


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


def _path(text: Any, where: str) -> tuple:
    if not isinstance(text, str) or not text:
        raise RegistryError(f"{where}: a field path must be a non-empty string, got {text!r}")
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


def _scalar_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _parse_field(name: str, spec: Any, where: str) -> FieldSpec:
    where = f"{where}: field {name!r}"
    if isinstance(spec, str):
        return FieldSpec(name, path=_path(spec, where))
    if not isinstance(spec, dict):
        raise RegistryError(f"{where}: expected a path or a mapping, got {type(spec).__name__}")
    known = {"path", "join", "inner_join", "map", "choices", "index", "index_map"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise RegistryError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    has_path, has_choices = "path" in spec, "choices" in spec
    if has_path == has_choices:
        raise RegistryError(f"{where}: give exactly one of 'path' or 'choices'")
    choices = spec.get("choices", ())
    if isinstance(choices, str):
        choices = (_path(choices, where),)
    else:
        choices = tuple(_path(c, where) for c in choices)
    for key in ("map", "index_map"):
        if key in spec and not isinstance(spec[key], dict):
            raise RegistryError(f"{where}: {key!r} must be a mapping")
    return FieldSpec(
        name=name,
        path=_path(spec["path"], where) if has_path else (),
        join=spec.get("join"),
        inner_join=spec.get("inner_join"),
        map={_scalar_key(k): str(v) for k, v in spec["map"].items()} if "map" in spec else None,
        choices=choices,
        index=_path(spec["index"], where) if "index" in spec else (),
        index_map={_scalar_key(k): int(v) for k, v in spec["index_map"].items()} if "index_map" in spec else None,
    )


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
            if _scalar_key(raw) not in spec.index_map:
                raise FieldError("unmapped_value", f"{spec.name}: index {raw!r} not in index_map")
            raw = spec.index_map[_scalar_key(raw)]
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
                item = (spec.inner_join or " ").join(_scalar_key(v) for v in item)
            parts.append(_scalar_key(item))
        value = spec.join.join(parts)
    elif isinstance(value, dict):
        raise FieldError("not_text", f"{spec.name}: is an object")
    if spec.map is not None:
        key = _scalar_key(value)
        if key not in spec.map:
            raise FieldError("unmapped_value", f"{spec.name}: {key!r} not in map")
        value = spec.map[key]
    text = value if isinstance(value, str) else _scalar_key(value)
    if not text.strip():
        raise FieldError("empty_field", f"{spec.name}: empty")
    return text


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

    @property
    def trainable(self) -> bool:
        return "train" in self.source.splits

    @property
    def has_eval(self) -> bool:
        return "eval" in self.source.splits or self.source.eval_fraction > 0

    @property
    def has_options(self) -> bool:
        return bool(self.options) or self.options_field is not None


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


def _resolve(base: str, path: str) -> str:
    if "://" in path or path.startswith("/"):
        return path
    return posixpath.normpath(posixpath.join(base, path)) if base else path


def _parse_source(spec: Any, base: str, where: str) -> Source:
    if not isinstance(spec, dict):
        raise RegistryError(f"{where}: 'source' must be a mapping")
    unknown = sorted(set(spec) - {"format", "splits", "path", "id_field", "extract", "eval_fraction"})
    if unknown:
        raise RegistryError(f"{where}: source has unknown keys {unknown}")
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise RegistryError(f"{where}: source format {fmt!r} is not one of {', '.join(FORMATS)}")
    splits = spec.get("splits")
    if not isinstance(splits, dict) or not splits or set(splits) - set(SPLITS):
        raise RegistryError(f"{where}: source 'splits' must map some of {SPLITS} to files")
    extract = spec.get("extract")
    if extract is not None and extract not in EXTRACTORS:
        raise RegistryError(f"{where}: extract {extract!r} is not one of {', '.join(EXTRACTORS)}")
    try:
        eval_fraction = float(spec.get("eval_fraction", 0.0))
    except (TypeError, ValueError):
        raise RegistryError(f"{where}: eval_fraction must be a number") from None
    if eval_fraction and extract is None:
        raise RegistryError(f"{where}: eval_fraction applies to extracted sources only (give an 'eval' split)")
    if extract is not None:
        if set(splits) != {"train"}:
            raise RegistryError(f"{where}: an extracted source has one 'train' split; eval_fraction"
                                " sends a share of it to eval")
        if not 0.0 <= eval_fraction < 1.0:
            raise RegistryError(f"{where}: eval_fraction must be in [0, 1)")
    path = spec.get("path")
    if fmt == "hf_disk":
        if not isinstance(path, str):
            raise RegistryError(f"{where}: an hf_disk source needs 'path' (the save_to_disk folder)")
        path = _resolve(base, path)
        resolved = {k: str(v) for k, v in splits.items()}
    else:
        resolved = {k: _resolve(base, str(v)) for k, v in splits.items()}
    if fmt == "mono" and extract is None:
        raise RegistryError(f"{where}: a mono source gives documents: it needs 'extract'")
    return Source(format=fmt, splits=resolved, path=path, id_field=spec.get("id_field"),
                  extract=extract, eval_fraction=eval_fraction)


def _parse_task(spec: Any, base: str, label: str, index: int) -> Task:
    if not isinstance(spec, dict):
        raise RegistryError(f"{label}: task {index} must be a mapping")
    name = spec.get("name")
    if not isinstance(name, str) or not name.replace("_", "").isalnum():
        raise RegistryError(f"{label}: task {index}: 'name' must be letters, digits and '_', got {name!r}")
    where = f"{label}: task {name}"
    unknown = sorted(set(spec) - {"name", "cluster", "source", "fields", "options", "templates", "note"})
    if unknown:
        raise RegistryError(f"{where}: unknown keys {unknown}")
    cluster = spec.get("cluster")
    if not isinstance(cluster, str) or not cluster.replace("_", "").isalnum():
        raise RegistryError(f"{where}: 'cluster' must be letters, digits and '_', got {cluster!r}")
    source = _parse_source(spec.get("source"), base, where)
    raw_fields = spec.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise RegistryError(f"{where}: 'fields' must map template field names to source paths")
    fields = {}
    for field_name, field_spec in raw_fields.items():
        if not str(field_name).isidentifier():
            raise RegistryError(f"{where}: field name {field_name!r} is not an identifier")
        fields[field_name] = _parse_field(field_name, field_spec, where)
    if source.extract == "python_functions":
        for f in fields.values():
            missing = f.top_keys() - set(CODE_FIELDS)
            if missing:
                raise RegistryError(f"{where}: field {f.name!r} reads {sorted(missing)}, which python_functions"
                                    f" does not give (it gives {', '.join(CODE_FIELDS)})")
    options = spec.get("options", ())
    options_field = None
    if isinstance(options, dict):
        options_field = options.get("field")
        if options_field not in fields:
            raise RegistryError(f"{where}: options field {options_field!r} is not a mapped field")
        options = ()
    elif not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise RegistryError(f"{where}: 'options' must be a list of strings or {{field: NAME}}")
    raw_templates = spec.get("templates")
    if not isinstance(raw_templates, list) or len(raw_templates) != TEMPLATES_PER_TASK:
        got = len(raw_templates) if isinstance(raw_templates, list) else 0
        raise RegistryError(f"{where}: needs {TEMPLATES_PER_TASK} templates, has {got}")
    templates = []
    for i, t in enumerate(raw_templates):
        if not isinstance(t, dict) or not isinstance(t.get("input"), str) or not isinstance(t.get("target"), str):
            raise RegistryError(f"{where}: template {i} needs string 'input' and 'target'")
        template = Template(t["input"], t["target"], bool(t.get("inverse", False)))
        try:
            used = set().union(*template.fields())
        except ValueError as err:
            raise RegistryError(f"{where}: template {i}: {err}") from None
        missing = sorted(used - set(fields))
        if missing:
            raise RegistryError(f"{where}: template {i} names {', '.join(missing)}, not a mapped field"
                                f" (mapped: {', '.join(sorted(fields))})")
        if not template.fields()[1]:
            raise RegistryError(f"{where}: template {i}: the target uses no field")
        templates.append(template)
    inverse = sum(t.inverse for t in templates)
    if inverse > MAX_INVERSE:
        raise RegistryError(f"{where}: {inverse} inverse templates, at most {MAX_INVERSE}")
    return Task(name=name, cluster=cluster, source=source, fields=fields, templates=tuple(templates),
                options=tuple(options), options_field=options_field, note=str(spec.get("note", "")))


def parse_registry(text: str, path: str, base: Optional[str] = None) -> Registry:
    """A Registry from the file's text (YAML, which includes JSON); sources not yet checked."""
    import yaml

    label = f"registry {path}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RegistryError(f"{label}: not YAML/JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list) or not data["tasks"]:
        raise RegistryError(f"{label}: expected a mapping with a non-empty 'tasks' list")
    base = posixpath.dirname(path) if base is None else base
    tasks = [_parse_task(spec, base, label, i) for i, spec in enumerate(data["tasks"])]
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RegistryError(f"{label}: task names occur twice: {', '.join(duplicates)}")
    close = data.get("close_clusters", {}) or {}
    clusters = {t.cluster for t in tasks}
    if not isinstance(close, dict):
        raise RegistryError(f"{label}: 'close_clusters' must map a cluster to a list of clusters")
    close_clusters = {}
    for cluster, others in close.items():
        others = [others] if isinstance(others, str) else list(others or [])
        unknown = sorted({cluster, *others} - clusters)
        if unknown:
            raise RegistryError(f"{label}: close_clusters names clusters no task has: {', '.join(unknown)}")
        close_clusters[cluster] = tuple(sorted(set(others) - {cluster}))
    return Registry(path=path, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    tasks=tuple(tasks), close_clusters=close_clusters)


# --------------------------------------------------------------------------------------------
# Sources: records of one split (used by the driver's checks and by the Beam readers)
# --------------------------------------------------------------------------------------------


def _open(path: str):
    import fsspec

    return fsspec.open(path, "rb").open()


def expand_paths(pattern: str) -> list:
    """Files matching a path or glob, sorted (fsspec); [] when none."""
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    return sorted(prefix + p if prefix and "://" not in p else p for p in paths)


def jsonl_records(path: str, strict: bool = True) -> Iterator[tuple]:
    """(``<file name>:<0-based line>``, record) for each non-blank line. A line that is not JSON
    raises ValueError, or with ``strict=False`` gives record None (the reader counts it)."""
    name = posixpath.basename(path)
    with _open(path) as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                if strict:
                    raise ValueError(f"{path}:{number + 1}: not JSON ({err})") from None
                record = None
            yield f"{name}:{number}", record


def parquet_records(path: str) -> Iterator[tuple]:
    """(``<file name>:<row>``, record) for each row, one row group in memory at a time."""
    import pyarrow.parquet as pq

    name = posixpath.basename(path)
    with _open(path) as handle:
        parquet = pq.ParquetFile(handle)
        row = 0
        for group in range(parquet.num_row_groups):
            for record in parquet.read_row_group(group).to_pylist():
                yield f"{name}:{row}", record
                row += 1


def hf_records(folder: str, split: str) -> Iterator[tuple]:
    """(``<split>:<row>``, record) of a Hugging Face ``datasets`` folder written by save_to_disk."""
    try:
        import datasets
    except ImportError:
        raise ValueError("an hf_disk source needs the 'datasets' library (pip install datasets)") from None
    loaded = datasets.load_from_disk(folder)
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ValueError(f"{folder} has no split {split!r} (has {', '.join(loaded)})")
        loaded = loaded[split]
    for row, record in enumerate(loaded):
        yield f"{split}:{row}", record


def first_record_keys(source: Source, split: str) -> Optional[set]:
    """The keys of a split's first record (None when its files hold no record); ValueError if unreadable."""
    if source.format == "hf_disk":
        for _, record in hf_records(source.path, source.splits[split]):
            return set(record)
        return None
    paths = expand_paths(source.splits[split])
    if not paths:
        raise ValueError(f"no file matches {source.splits[split]}")
    reader = jsonl_records if source.format == "jsonl" else parquet_records
    for path in paths:
        for _, record in reader(path):
            if not isinstance(record, dict):
                raise ValueError(f"{path}: records must be JSON objects")
            return set(record)
    return None


def check_sources(registry: Registry) -> None:
    """Every source is readable and its records hold every key the task's fields read."""
    for task in registry.tasks:
        where = f"registry {registry.path}: task {task.name}"
        needed = set().union(*(f.top_keys() for f in task.fields.values()))
        if task.source.format in ("jsonl", "parquet"):
            for split, location in task.source.splits.items():
                names = [posixpath.basename(p) for p in expand_paths(location)]
                twice = sorted({n for n in names if names.count(n) > 1})
                if twice:  # example ids are "<file name>:<row>"
                    raise RegistryError(f"{where}: source {split} matches several files named"
                                        f" {', '.join(twice)}; file names must be unique")
        for split, location in task.source.splits.items():
            if task.source.format == "mono":
                try:
                    if not expand_paths(location):
                        raise ValueError(f"no file matches {location}")
                except (OSError, ValueError) as err:
                    raise RegistryError(f"{where}: source {split}: {err}") from None
                continue
            if task.source.extract is not None:
                needed_here = {"id", "text"}
            else:
                needed_here = needed | ({task.source.id_field} if task.source.id_field else set())
            try:
                keys = first_record_keys(task.source, split)
            except (OSError, ValueError) as err:
                raise RegistryError(f"{where}: source {split} ({location}): {err}") from None
            if keys is None:
                raise RegistryError(f"{where}: source {split} ({location}) holds no record")
            missing = sorted(needed_here - keys)
            if missing:
                raise RegistryError(f"{where}: source {split} ({location}) lacks mapped field"
                                    f" {', '.join(missing)} (its records have: {', '.join(sorted(keys))})")


def load_registry(path: str, check: bool = True) -> Registry:
    """Read, parse and (by default) check a registry file on any fsspec filesystem."""
    try:
        with _open(path) as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RegistryError(f"registry {path}: cannot read ({err})") from None
    registry = parse_registry(text, path)
    if check:
        check_sources(registry)
    return registry


# --------------------------------------------------------------------------------------------
# Rendering, choices by hash, the mixing rule, held-out splits
# --------------------------------------------------------------------------------------------


def stable_hash(*parts: Any) -> int:
    """64-bit BLAKE2b of the parts: the same on every worker and run (Python's hash() is not)."""
    text = "\x00".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def template_index(seed: int, task: str, example_id: str, n: int = TEMPLATES_PER_TASK) -> int:
    """The template an example is rendered with: hash(seed, task, id) mod n, so all are used evenly."""
    return stable_hash(seed, "template", task, example_id) % n


def selection_key(seed: int, task: str, example_id: str) -> int:
    """Rank of an example in its task: the caps keep the smallest keys."""
    return stable_hash(seed, "select", task, example_id)


def example_fields(task: Task, record: dict) -> dict:
    """{field: value} of a record; FieldError when it lacks one."""
    return {name: field_value(record, spec) for name, spec in task.fields.items()}


def options_of(task: Task, fields: dict) -> list:
    if task.options_field is not None:
        value = fields[task.options_field]
        if not isinstance(value, list) or not value:
            raise FieldError("not_text", f"{task.options_field}: options must be a non-empty list")
        return value
    return list(task.options)


def render(task: Task, index: int, fields: dict) -> tuple[str, str]:
    """(input, target) of template ``index``; forward templates of classification tasks list the
    options after the input (``OPTIONS:`` then ``- option`` lines), as FLAN does."""
    template = task.templates[index]
    for name in set().union(*template.fields()):
        if not isinstance(fields[name], str):
            raise FieldError("not_text", f"{name}: a list cannot fill a template")
    text_input = template.input.format(**fields)
    target = template.target.format(**fields)
    if task.has_options and not template.inverse:
        options = options_of(task, fields)
        text_input = f"{text_input}\n\n{OPTIONS_HEADER}\n" + "\n".join(f"- {o}" for o in options)
    return text_input, target


def apportion(total: int, weights: dict) -> dict:
    """``total`` split in proportion to ``weights`` by largest remainder (ties by name): exact, and
    the parts add up to ``total``."""
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        return {name: 0 for name in weights}
    quotas = {name: total * w / weight_sum for name, w in weights.items()}
    parts = {name: int(q) for name, q in quotas.items()}
    left = total - sum(parts.values())
    for name in sorted(weights, key=lambda n: (-(quotas[n] - parts[n]), n))[:left]:
        parts[name] += 1
    return parts


def mixture_plan(available: dict, mixing_cap: int, size: Optional[int] = None) -> dict:
    """Examples-proportional mixing with a cap (FLAN): rate_t = min(n_t, cap) / sum_j min(n_j, cap).

    ``available`` is each task's example count after ``--max_examples_per_task``. The mixture holds
    ``size`` examples (default: sum_j min(n_j, cap), so each task gives min(n_t, cap) and none
    repeats); task t gets its rate's share of them (largest remainder). A task asked for more than
    it has repeats all its examples, the lowest-keyed ones once more for the remainder.
    """
    weights = {t: min(n, mixing_cap) for t, n in available.items()}
    total = sum(weights.values()) if size is None else size
    examples = apportion(total, weights)
    weight_sum = sum(weights.values())
    plan = {}
    for t, n in sorted(available.items()):
        c = examples[t]
        plan[t] = {"available": n, "rate": weights[t] / weight_sum if weight_sum else 0.0,
                   "examples": c, "copies": c // n if n else 0, "extra": c % n if n else 0}
    return plan


@dataclasses.dataclass(frozen=True)
class Split:
    """One mixture to build: the training tasks, and the held-out tasks' evaluation set."""

    name: str  # "all" or "holdout-<cluster>"
    holdout: Optional[str]
    excluded_clusters: tuple
    train_tasks: tuple
    eval_tasks: tuple


def plan_splits(registry: Registry, holdout: Optional[str] = None, all_holdouts: bool = False) -> list:
    """The mixtures to build: one with every trainable task, one leaving ``holdout`` (and its close
    clusters) out, or one per cluster (``all_holdouts``)."""
    clusters = registry.clusters
    if holdout is not None and holdout not in clusters:
        raise RegistryError(f"--holdout_cluster: {holdout!r} is no task's cluster (clusters: {', '.join(clusters)})")
    holdouts = clusters if all_holdouts else [holdout]
    splits = []
    for cluster in holdouts:
        excluded = () if cluster is None else tuple(sorted({cluster, *registry.close_clusters.get(cluster, ())}))
        train = tuple(t.name for t in registry.tasks if t.trainable and t.cluster not in excluded)
        evals = tuple(t.name for t in registry.tasks if t.cluster == cluster and t.has_eval)
        splits.append(Split(name="all" if cluster is None else f"holdout-{cluster}", holdout=cluster,
                            excluded_clusters=excluded, train_tasks=train, eval_tasks=evals))
    return splits


@dataclasses.dataclass(frozen=True)
class RenderedExample:
    """One example rendered with its template: what is decontaminated, audited and tokenized."""

    task: str
    cluster: str
    split: str  # "train" or "eval" (the source split it came from)
    id: str  # "<task>/<source id>"; unique within the job
    template: int
    inverse: bool
    input: str
    target: str

    @property
    def text(self) -> str:
        """What decontamination matches: input and target, since an inverse template puts the
        evaluation question in the target, and training on it leaks it as much."""
        return f"{self.input}\n{self.target}"


def example_parquet_schema():
    """Columns of ``--write_examples``: one row per written example, for auditing a mixture."""
    import pyarrow as pa

    return pa.schema([("task", pa.string()), ("cluster", pa.string()), ("split", pa.string()),
                      ("template", pa.int64()), ("inverse", pa.bool_()), ("id", pa.string()),
                      ("input", pa.large_string()), ("target", pa.large_string())])


def example_row(example: RenderedExample) -> dict:
    return {"task": example.task, "cluster": example.cluster, "split": example.split,
            "template": example.template, "inverse": example.inverse, "id": example.id,
            "input": example.input, "target": example.target}
