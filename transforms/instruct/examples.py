"""Read every registered task's source and render its examples with their templates.

Files are spread over workers one per element (a JSONL file is read line by line, a Parquet file one
row group at a time), then the records are redistributed, so rendering is not limited to one worker
per file. Code tasks run Sluice's own Mono curation (license, quality, exact dedup) on their repo
manifest and take the Python functions with docstrings. A training record is rendered with the
template its hash picks; an evaluation record under each of its task's forward templates (one
example each, the same id), never an inverse one, with its metrics, references and options. A
record that lacks what its task's fields need is a counted reject, never a crash:
``instruct_render/<reason>`` (``kept`` counts records, not renderings).
"""

from __future__ import annotations

import apache_beam as beam

from schemas.instruct import FieldError, Registry, example_fields
from schemas.instruct_example import RenderedExample
from transforms.stats.counting import KEPT, count
from transforms.curation.github import CurateGithubRepos, CurationConfig
from transforms.sources.http_fetch import FetchPolicy
from transforms.instruct.code_tasks import ExtractPythonFunctions
from transforms.instruct.render import render, render_eval, stable_hash, template_index
from transforms.instruct.task_sources import file_records, split_files

READ_STAGE = "instruct_read"
RENDER_STAGE = "instruct_render"


def source_files(registry: Registry) -> list:
    """(task, split, file) for every file-based source, expanded on the driver (names only)."""
    out = []
    for task in registry.tasks:
        if task.source.format == "mono":
            continue
        for split in sorted(task.source.splits):
            out.extend((task.name, split, location) for location in split_files(task.source, split))
    return out


class _ReadFileFn(beam.DoFn):
    def __init__(self, registry: Registry):
        self._tasks = {t.name: t for t in registry.tasks}

    def process(self, item):
        task_name, split, location = item
        task = self._tasks[task_name]
        source = task.source
        for row_id, record in file_records(source, location, strict=False):
            if record is None:
                count(READ_STAGE, "invalid_json")
                continue
            if not isinstance(record, dict):
                count(READ_STAGE, "not_an_object")
                continue
            if source.extract is not None:  # documents: code tasks read the functions in them
                yield ("document", task_name, split, (str(record.get("id", row_id)), str(record.get("path", "")),
                                                      record.get("text") or ""))
                continue
            example_id = row_id
            if source.id_field:
                if record.get(source.id_field) in (None, ""):
                    count(READ_STAGE, "missing_id")
                    continue
                example_id = str(record[source.id_field])
            count(READ_STAGE, KEPT)
            yield ("record", task_name, split, (example_id, record))


def code_split(function_id: str, eval_fraction: float) -> str:
    """A function's split, the same for every task that reads it: hash(id) below the eval share."""
    return "eval" if stable_hash("code-eval", function_id) < eval_fraction * 2.0 ** 64 else "train"


class _RenderFn(beam.DoFn):
    def __init__(self, registry: Registry, seed: int):
        self._tasks = {t.name: t for t in registry.tasks}
        self._seed = seed

    def process(self, item):
        task_name, split, (example_id, record) = item
        task = self._tasks[task_name]
        if task.source.extract is not None:
            split = code_split(example_id, task.source.eval_fraction)
        index = template_index(self._seed, task.name, example_id, len(task.templates))
        try:
            fields = example_fields(task, record)
            if split == "eval":  # every forward template, with what scoring needs
                rendered = render_eval(task, fields, record)
            else:
                rendered = [(index, *render(task, index, fields), (), ())]
        except FieldError as err:
            count(RENDER_STAGE, err.reason)
            return
        count(RENDER_STAGE, KEPT)
        metrics = task.metrics if split == "eval" else ()
        for index, text_input, target, references, options in rendered:
            yield RenderedExample(
                task=task.name, cluster=task.cluster, split=split, id=f"{task.name}/{example_id}",
                template=index, inverse=task.templates[index].inverse, input=text_input, target=target,
                metrics=metrics, references=references, options=options)


def _to_code_tasks(function, tasks):
    function_id, record = function
    for task_name in tasks:
        yield task_name, "train", (function_id, record)


class ReadAndRender(beam.PTransform):
    """Pipeline root -> (RenderedExamples of every task, both splits; the ``Curated`` of each Mono
    manifest a code task reads: its archive fingerprints and first unreadable repositories, for
    the manifest and the loss gate). ``fetch``: how those archives are downloaded."""

    def __init__(self, registry: Registry, seed: int, fetch: FetchPolicy = FetchPolicy()):
        super().__init__()
        self._registry = registry
        self._seed = seed
        self._fetch = fetch

    def expand(self, pbegin):
        registry = self._registry
        files = source_files(registry)
        branches = []
        if files:
            read = (pbegin
                    | "SourceFiles" >> beam.Create(files)
                    | "SpreadFiles" >> beam.Reshuffle()
                    | "ReadFiles" >> beam.ParDo(_ReadFileFn(registry)))
            records = (read | "Records" >> beam.Filter(lambda item: item[0] == "record")
                       | "DropKind" >> beam.Map(lambda item: item[1:]))
            branches.append(records)
            documents = (read | "Documents" >> beam.Filter(lambda item: item[0] == "document"))
            by_task = {}
            for task in registry.tasks:
                if task.source.extract is not None and task.source.format != "mono":
                    by_task.setdefault(task.name, task)
            for name in sorted(by_task):
                functions = (documents
                             | f"DocumentsOf_{name}" >> beam.Filter(lambda item, n=name: item[1] == n)
                             | f"DocText_{name}" >> beam.Map(lambda item: item[3])
                             | f"Extract_{name}" >> ExtractPythonFunctions())
                branches.append(functions | f"ToTask_{name}" >> beam.FlatMap(_to_code_tasks, [name]))
        code_sources = []
        mono_tasks = {}
        for task in registry.tasks:
            if task.source.format == "mono":
                mono_tasks.setdefault(task.source.splits["train"], []).append(task.name)
        for i, (manifest, names) in enumerate(sorted(mono_tasks.items())):
            curated = pbegin | f"Curate{i}" >> CurateGithubRepos(CurationConfig(manifest=manifest, fetch=self._fetch))
            functions = (curated.documents
                         | f"DocText{i}" >> beam.Map(lambda doc: (doc.id, doc.path, doc.text))
                         | f"ExtractFunctions{i}" >> ExtractPythonFunctions())
            branches.append(functions | f"ToCodeTasks{i}" >> beam.FlatMap(_to_code_tasks, sorted(names)))
            code_sources.append(curated)
        examples = (branches | "AllRecords" >> beam.Flatten()
                    | "SpreadRecords" >> beam.Reshuffle()
                    | "Render" >> beam.ParDo(_RenderFn(registry, self._seed)))
        return examples, code_sources
