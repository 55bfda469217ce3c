"""Parsing a task registry file into ``schemas.instruct.Registry``, with no Beam import.

Everything the registry's own text can get wrong (a template naming a missing field, a wrong
template count, an unknown key, a field path that is not one) fails here with one line naming the
registry, the task and the problem, before any job starts. Whether each source is readable and
holds the mapped fields needs the sources read: ``transforms.instruct.task_sources.check_sources``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
from typing import Any, Optional

from schemas.instruct import (CODE_FIELDS, EXTRACTORS, FORMATS, MAX_INVERSE, METRICS, SPLITS, TEMPLATES_PER_TASK,
                              WILDCARD, FieldSpec, Registry, RegistryError, Source, Task, Template, scalar_key)


def _path(text: Any, where: str) -> tuple:
    if not isinstance(text, str) or not text:
        raise RegistryError(f"{where}: a field path must be a non-empty string, got {text!r}")
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


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
        map={scalar_key(k): str(v) for k, v in spec["map"].items()} if "map" in spec else None,
        choices=choices,
        index=_path(spec["index"], where) if "index" in spec else (),
        index_map={scalar_key(k): int(v) for k, v in spec["index_map"].items()} if "index_map" in spec else None,
    )


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


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and value.replace("_", "").isalnum()


def _parse_task(spec: Any, base: str, label: str, index: int) -> Task:
    if not isinstance(spec, dict):
        raise RegistryError(f"{label}: task {index} must be a mapping")
    name = spec.get("name")
    if not _is_name(name):
        raise RegistryError(f"{label}: task {index}: 'name' must be letters, digits and '_', got {name!r}")
    where = f"{label}: task {name}"
    unknown = sorted(set(spec) - {"name", "cluster", "source", "fields", "options", "templates", "note",
                                  "metric", "references"})
    if unknown:
        raise RegistryError(f"{where}: unknown keys {unknown}")
    cluster = spec.get("cluster")
    if not _is_name(cluster):
        raise RegistryError(f"{where}: 'cluster' must be letters, digits and '_', got {cluster!r}")
    source = _parse_source(spec.get("source"), base, where)
    fields = _parse_fields(spec.get("fields"), source, where)
    options, options_field = _parse_options(spec.get("options", ()), fields, where)
    task = Task(name=name, cluster=cluster, source=source, fields=fields,
                templates=_parse_templates(spec.get("templates"), fields, where),
                options=options, options_field=options_field, note=str(spec.get("note", "")),
                references=_parse_references(spec.get("references"), where))
    metrics = _parse_metrics(spec.get("metric"), task, where)
    if task.references and task.answer_field is None:
        raise RegistryError(f"{where}: 'references' replace the answer in the forward targets, which must all"
                            " fill one and the same field")
    return dataclasses.replace(task, metrics=metrics)


def _parse_metrics(raw: Any, task: Task, where: str) -> tuple:
    """``metric: NAME`` or a list of names (the first is the primary score); required when the task
    has evaluation examples, since they are scored."""
    known = ", ".join(METRICS)
    if raw is None:
        if task.has_eval:
            raise RegistryError(f"{where}: an evaluated task needs 'metric' (one or a list of: {known})")
        return ()
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RegistryError(f"{where}: 'metric' must be a name or a list of names (of: {known})")
    for name in names:
        if name not in METRICS:
            raise RegistryError(f"{where}: unknown metric {name!r} (known: {known})")
    if len(set(names)) != len(names):
        raise RegistryError(f"{where}: 'metric' names a metric twice")
    if "accuracy" in names and not task.has_options:
        raise RegistryError(f"{where}: metric 'accuracy' ranks the task's options, and the task has no 'options'")
    return tuple(names)


def _parse_references(raw: Any, where: str) -> tuple:
    """The path of every reference answer (``answers.*.text``); () when the target is the only one."""
    if raw is None:
        return ()
    path = _path(raw, f"{where}: references")
    if any(isinstance(p, str) and WILDCARD in p and p != WILDCARD for p in path):
        raise RegistryError(f"{where}: references {raw!r}: '{WILDCARD}' must be a whole path part")
    return path


def _parse_fields(raw: Any, source: Source, where: str) -> dict:
    """name -> FieldSpec; an extracted source's fields read only what its extractor gives."""
    if not isinstance(raw, dict) or not raw:
        raise RegistryError(f"{where}: 'fields' must map template field names to source paths")
    fields = {}
    for field_name, field_spec in raw.items():
        if not str(field_name).isidentifier():
            raise RegistryError(f"{where}: field name {field_name!r} is not an identifier")
        fields[field_name] = _parse_field(field_name, field_spec, where)
    if source.extract == "python_functions":
        for f in fields.values():
            missing = f.top_keys() - set(CODE_FIELDS)
            if missing:
                raise RegistryError(f"{where}: field {f.name!r} reads {sorted(missing)}, which python_functions"
                                    f" does not give (it gives {', '.join(CODE_FIELDS)})")
    return fields


def _parse_options(options: Any, fields: dict, where: str) -> tuple:
    """(fixed options, None), or ((), the mapped field that lists each example's options)."""
    if isinstance(options, dict):
        options_field = options.get("field")
        if options_field not in fields:
            raise RegistryError(f"{where}: options field {options_field!r} is not a mapped field")
        return (), options_field
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise RegistryError(f"{where}: 'options' must be a list of strings or {{field: NAME}}")
    return tuple(options), None


def _parse_templates(raw: Any, fields: dict, where: str) -> tuple:
    if not isinstance(raw, list) or len(raw) != TEMPLATES_PER_TASK:
        got = len(raw) if isinstance(raw, list) else 0
        raise RegistryError(f"{where}: needs {TEMPLATES_PER_TASK} templates, has {got}")
    templates = tuple(_parse_template(t, i, fields, where) for i, t in enumerate(raw))
    inverse = sum(t.inverse for t in templates)
    if inverse > MAX_INVERSE:
        raise RegistryError(f"{where}: {inverse} inverse templates, at most {MAX_INVERSE}")
    return templates


def _parse_template(spec: Any, i: int, fields: dict, where: str) -> Template:
    if not isinstance(spec, dict) or not all(isinstance(spec.get(k), str) for k in ("input", "target")):
        raise RegistryError(f"{where}: template {i} needs string 'input' and 'target'")
    template = Template(spec["input"], spec["target"], bool(spec.get("inverse", False)))
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
    return template


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


def load_registry(path: str) -> Registry:
    """Read and parse a registry file on any fsspec filesystem (its sources are checked by
    ``transforms.instruct.task_sources.check_sources``, which reads them)."""
    import fsspec

    try:
        with fsspec.open(path, "rb").open() as handle:
            text = handle.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RegistryError(f"registry {path}: cannot read ({err})") from None
    return parse_registry(text, path)
