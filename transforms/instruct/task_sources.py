"""The task sources as the driver and the readers see them: files, records, checks, evaluation texts.

A source's split is files (a path or glob of JSONL or Parquet on any fsspec filesystem, or one
``https://`` URL: fetched whole with ``http_fetch``'s retries, so a blip cannot shrink a task) or, for
``hf_disk``, a split of a ``save_to_disk`` folder. The readers here serve the Beam read in
``examples.py`` (one file per element) and the driver, which before any job starts checks every
source (``check_sources``: readable, its first record holding every mapped key, file names unique
since ids are ``<file name>:<row>``), reads the evaluation splits' fields for decontamination
(benchmarks are small, as HumanEval is) and lists the source files' sizes for the manifest. The
registry's text is parsed in ``schemas/instruct_parse.py``, which reads no source.
"""

from __future__ import annotations

import json
import posixpath
from typing import Iterator, Optional

from schemas.instruct import FieldError, Registry, RegistryError, Source, Task, example_fields, reference_values
from schemas.instruct_parse import load_registry
from transforms.decontamination import MIN_ITEM_TOKENS
from transforms.decontamination import tokens as decontamination_tokens
from transforms.sources.http_fetch import Fetcher, FetchError, FetchPolicy, is_http


def _open(path: str):
    """A binary file of the source. An http(s) URL is fetched whole into a spooled file, each retry
    from the start (a half-read file is never parsed); a failure is an OSError naming the reason."""
    if is_http(path):
        fetcher = Fetcher(FetchPolicy())
        try:
            return fetcher.spool(path)
        except FetchError as err:
            raise OSError(f"{err.reason}: {err.detail}") from None
        finally:
            fetcher.close()
    import fsspec

    return fsspec.open(path, "rb").open()


def expand_paths(pattern: str) -> list:
    """Files matching a path or glob, sorted (fsspec); [] when none. An http(s) URL is one file
    (HTTP has no listing to glob)."""
    if is_http(pattern):
        return [pattern]
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


def split_files(source: Source, split: str) -> list:
    """What a split reads, one ``file_records`` call each: its files, or its name in an hf_disk folder."""
    location = source.splits[split]
    return [location] if source.format == "hf_disk" else expand_paths(location)


def file_records(source: Source, location: str, strict: bool = True) -> Iterator[tuple]:
    """(row id, record) of one of ``split_files``, read as the source's format says."""
    if source.format == "hf_disk":
        return hf_records(source.path, location)
    if source.format == "parquet":
        return parquet_records(location)
    return jsonl_records(location, strict=strict)


def first_record_keys(source: Source, split: str) -> Optional[set]:
    """The keys of a split's first record (None when its files hold no record); ValueError if unreadable."""
    locations = split_files(source, split)
    if not locations:
        raise ValueError(f"no file matches {source.splits[split]}")
    for location in locations:
        for _, record in file_records(source, location):
            if not isinstance(record, dict):
                raise ValueError(f"{location}: records must be JSON objects")
            return set(record)
    return None


def _check_unique_names(source: Source, where: str) -> None:
    for split, location in source.splits.items():
        names = [posixpath.basename(p) for p in expand_paths(location)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # example ids are "<file name>:<row>"
            raise RegistryError(f"{where}: source {split} matches several files named"
                                f" {', '.join(twice)}; file names must be unique")


def _check_split(task: Task, split: str, location: str, where: str) -> None:
    """A mono split's manifest exists; another split's first record holds every key read."""
    if task.source.format == "mono":
        try:
            if not expand_paths(location):
                raise ValueError(f"no file matches {location}")
        except (OSError, ValueError) as err:
            raise RegistryError(f"{where}: source {split}: {err}") from None
        return
    if task.source.extract is not None:
        needed = {"id", "text"}
    else:
        needed = set().union(*(f.top_keys() for f in task.fields.values()))
        needed |= {task.source.id_field} if task.source.id_field else set()
        if split == "eval" and task.references:
            needed.add(task.references[0])
    try:
        keys = first_record_keys(task.source, split)
    except (OSError, ValueError) as err:
        raise RegistryError(f"{where}: source {split} ({location}): {err}") from None
    if keys is None:
        raise RegistryError(f"{where}: source {split} ({location}) holds no record")
    missing = sorted(needed - keys)
    if missing:
        raise RegistryError(f"{where}: source {split} ({location}) lacks mapped field"
                            f" {', '.join(missing)} (its records have: {', '.join(sorted(keys))})")


def check_sources(registry: Registry) -> None:
    """Every source is readable and its records hold every key the task's fields read."""
    for task in registry.tasks:
        where = f"registry {registry.path}: task {task.name}"
        if task.source.format in ("jsonl", "parquet"):
            _check_unique_names(task.source, where)
        for split, location in task.source.splits.items():
            _check_split(task, split, location, where)


def load_checked_registry(path: str) -> Registry:
    """The registry at ``path``, parsed and its sources checked: what a job may run on."""
    registry = load_registry(path)
    check_sources(registry)
    return registry


def eval_texts(registry: Registry) -> list:
    """``{id, text}`` for each field and reference answer of every evaluation example of the
    file-based tasks.

    Decontamination matches content, not template wording, and one item per field (a question, a
    passage) matches a training input that holds it whatever surrounds it; fields too short to be
    evidence (a label, a short answer: under the matcher's 8 words) are left out. Evaluation splits are small
    (benchmarks), so the driver reads them, as it loads HumanEval; code tasks' evaluation functions
    are split off by hash and not listed.
    """
    items = []
    for task in registry.tasks:
        if "eval" not in task.source.splits or task.source.extract:
            continue
        records = (r for location in split_files(task.source, "eval") for r in file_records(task.source, location))
        for row_id, record in records:
            try:
                fields = example_fields(task, record)
            except FieldError:
                continue
            example_id = str(record.get(task.source.id_field, row_id)) if task.source.id_field else row_id
            texts = [(name, value if isinstance(value, str) else "\n".join(value)) for name, value in fields.items()]
            if task.references:  # every reference answer (SciTLDR's several summaries...)
                try:
                    seen = {text for _, text in texts}
                    texts += [(f"references.{i}", v) for i, v in enumerate(reference_values(record, task.references))
                              if v not in seen]
                except FieldError:  # the example itself is a counted render reject (instruct_render)
                    pass
            for name, text in texts:
                if len(decontamination_tokens(text)) >= MIN_ITEM_TOKENS:  # shorter ones never match
                    items.append({"id": f"eval:{task.name}/{example_id}:{name}", "text": text})
    return items


def write_eval_texts(path: str, items: list) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")


def source_sizes(registry: Registry) -> list:
    """Path and size of every source file; not hashed, as NL does not hash its inputs (task
    datasets can be large Parquet sets). The registry itself is hashed."""
    paths = sorted({p for t in registry.tasks if t.source.format in ("jsonl", "parquet")
                    for split in t.source.splits for p in split_files(t.source, split)})
    return [{"path": p, "bytes": _size(p)} for p in paths]


def _size(path: str) -> int:
    """A source file's size: Beam's filesystems, or for an http(s) URL fsspec's (its Content-Length)."""
    from apache_beam.io.filesystems import FileSystems

    if is_http(path):
        import fsspec

        fs, inner = fsspec.core.url_to_fs(path)
        return int(fs.size(inner))
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
