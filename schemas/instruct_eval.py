"""The instruct evaluation record: one held-out example under one forward template, with no Beam import.

A split's ``eval/eval-*.tfrecord`` files hold one ``tf.train.Example`` per (task, example,
forward template): FLAN evaluates every held-out example under each of its task's forward
templates (never an inverse one) and reports the mean and the best over templates. The writer is
``transforms/instruct/streams.py``; a scorer (``training/``) reads them with ``read_eval_records``.

Features (every one present in every record; the lists may be empty where the table says so):

=============  =========  ============================================================================
name           kind       value
=============  =========  ============================================================================
task           bytes      the task's name in the registry
cluster        bytes      its FLAN cluster
id             bytes      ``<task>/<source id>``: the same for every template of an example
template       int64      the template's index in the task's ten (a forward one)
metrics        bytes[]    the task's metrics (``schemas.instruct.METRICS``), the first the primary
inputs         int64[]    token ids of ``input + "\\n"``, truncated to ``--max_input_tokens``, as the
                          training streams present an example
targets        int64[]    token ids of the target, truncated to ``--max_target_tokens`` (no end-of-text)
inputs_text    bytes      the rendered input (with ``OPTIONS:`` lines for a classification task)
targets_text   bytes      the rendered target
references     bytes[]    every reference answer, the target first (SQuAD's several answers...)
options        bytes[]    the example's classification options (fixed or its own); empty when none
=============  =========  ============================================================================
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Iterator

EVAL_FOLDER = "eval"
EVAL_PREFIX = "eval"


@dataclasses.dataclass(frozen=True)
class EvalRecord:
    """One evaluation example under one forward template: what scoring it needs."""

    task: str
    cluster: str
    id: str
    template: int
    metrics: tuple
    input: str
    target: str
    references: tuple
    options: tuple
    input_ids: tuple
    target_ids: tuple

    @property
    def metric(self) -> str:
        """The task's primary metric (its ``mean``/``best`` and its cluster's score use it)."""
        return self.metrics[0]


def _bytes(values) -> list:
    return [v.encode("utf-8") for v in values]


def encode_eval_record(record: EvalRecord) -> bytes:
    """The record as serialized ``tf.train.Example`` bytes (deterministic)."""
    from schemas.tf_example import Example

    example = Example()
    features = example.features.feature
    features["inputs"].int64_list.value[:] = [int(t) for t in record.input_ids]
    features["targets"].int64_list.value[:] = [int(t) for t in record.target_ids]
    features["task"].bytes_list.value[:] = _bytes([record.task])
    features["cluster"].bytes_list.value[:] = _bytes([record.cluster])
    features["id"].bytes_list.value[:] = _bytes([record.id])
    features["template"].int64_list.value[:] = [record.template]
    features["metrics"].bytes_list.value[:] = _bytes(record.metrics)
    features["inputs_text"].bytes_list.value[:] = _bytes([record.input])
    features["targets_text"].bytes_list.value[:] = _bytes([record.target])
    features["references"].bytes_list.value[:] = _bytes(record.references)
    features["options"].bytes_list.value[:] = _bytes(record.options)
    return example.SerializeToString(deterministic=True)


def decode_eval_record(data: bytes) -> EvalRecord:
    """An ``EvalRecord`` from ``encode_eval_record``'s bytes; ValueError naming a missing feature."""
    from schemas.tf_example import Example

    features = Example.FromString(data).features.feature

    def texts(name):
        if name not in features:
            raise ValueError(f"evaluation record lacks feature {name!r}")
        return tuple(v.decode("utf-8") for v in features[name].bytes_list.value)

    def ints(name):
        if name not in features:
            raise ValueError(f"evaluation record lacks feature {name!r}")
        return tuple(int(v) for v in features[name].int64_list.value)

    (task,), (cluster,), (example_id,) = texts("task"), texts("cluster"), texts("id")
    (text_input,), (target,), (template,) = texts("inputs_text"), texts("targets_text"), ints("template")
    return EvalRecord(task=task, cluster=cluster, id=example_id, template=template, metrics=texts("metrics"),
                      input=text_input, target=target, references=texts("references"), options=texts("options"),
                      input_ids=ints("inputs"), target_ids=ints("targets"))


def eval_files(path: str) -> list:
    """The evaluation files at ``path``: one ``.tfrecord`` file, a folder of ``eval-*.tfrecord``, or a
    split's folder (its ``eval/``), in name order; ValueError when there are none."""
    import fsspec

    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    if fs.isfile(root):
        return [path]
    folder = root
    if not fs.glob(posixpath.join(folder, f"{EVAL_PREFIX}-*.tfrecord")) and fs.isdir(posixpath.join(root, EVAL_FOLDER)):
        folder = posixpath.join(root, EVAL_FOLDER)
    files = sorted(fs.glob(posixpath.join(folder, f"{EVAL_PREFIX}-*.tfrecord")))
    if not files:
        raise ValueError(f"{path}: no {EVAL_PREFIX}-*.tfrecord evaluation files (in it or in its {EVAL_FOLDER}/)")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return files if protocol in ("file", "local") else [f"{protocol}://{f}" for f in files]


def read_eval_records(path: str) -> Iterator[EvalRecord]:
    """Every ``EvalRecord`` of ``eval_files(path)``, file by file in stored order (CRCs checked)."""
    import fsspec

    from schemas.tfrecord import read_records

    for location in eval_files(path):
        with fsspec.open(location, "rb") as handle:
            for data in read_records(handle):
                yield decode_eval_record(data)
