"""Reading and rendering task sources in Beam: JSONL, Parquet and Hugging Face folders; bad records
are counted rejects."""

from __future__ import annotations

import json
import pathlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from apache_beam.testing.util import assert_that, equal_to

from pipelines.job_metrics import counts_from_metrics
from schemas.instruct import RegistryError, example_fields
from transforms.instruct.examples import ReadAndRender, code_split
from transforms.instruct.render import render, template_index
from transforms.instruct.task_sources import load_checked_registry

ROOT = pathlib.Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "samples" / "instruct"


def sentiment_task(source: dict) -> dict:
    data = yaml.safe_load((SAMPLES / "tasks.yaml").read_text())
    task = next(t for t in data["tasks"] if t["name"] == "poem_sentiment")
    return dict(task, source=source)


def rows(split_file, n):
    lines = (SAMPLES / "poem_sentiment" / split_file).read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def render_all(registry_data, tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(registry_data))
    registry = load_checked_registry(str(path))
    pipeline = beam.Pipeline(runner="FnApiRunner")
    examples, _ = pipeline | ReadAndRender(registry, seed=0)
    summary = examples | beam.Map(lambda e: (e.task, e.split, e.id, e.template, e.target, e.references, e.options))
    assert_that(summary, equal_to(list(expected(registry))))
    result = pipeline.run()
    result.wait_until_finish()
    return counts_from_metrics(result)


def expected(registry):
    """What rendering must give, computed without Beam from the same rows: a training example under
    the template its hash picks, an evaluation example under each forward template (never an
    inverse one), with its references and options."""
    task = registry.task("poem_sentiment")
    options = ("negative", "no impact", "positive")
    for split, name, n in (("train", "train.jsonl", 12), ("eval", "validation.jsonl", 5)):
        for i, record in enumerate(rows(name, n)):
            if record["label"] == 2:  # the tests below map only three labels
                continue
            row_id = f"{name.split('.')[0]}:{i}" if task.source.format == "hf_disk" else f"{name.replace('jsonl', task.source.format)}:{i}"
            fields = example_fields(task, record)
            if split == "train":
                index = template_index(0, task.name, row_id)
                yield task.name, split, f"{task.name}/{row_id}", index, render(task, index, fields)[1], (), ()
                continue
            for index in (0, 1, 2, 3, 4, 5, 6):  # the forward ones; 7, 8 and 9 are inverse
                assert not task.templates[index].inverse
                answer = fields["sentiment"]
                yield task.name, split, f"{task.name}/{row_id}", index, answer, (answer,), options


def three_labels(task):
    task["fields"]["sentiment"]["map"] = {"-1": "negative", "0": "no impact", "1": "positive"}
    task["options"] = ["negative", "no impact", "positive"]
    return task


def test_jsonl_with_bad_lines_counts_them(tmp_path):
    for split_file, n in (("train.jsonl", 12), ("validation.jsonl", 5)):
        lines = [json.dumps(r) for r in rows(split_file, n)]
        (tmp_path / split_file).write_text("\n".join(lines) + "\n{not json\n[1, 2]\n")
    task = three_labels(sentiment_task({"format": "jsonl", "splits": {
        "train": str(tmp_path / "train.jsonl"), "eval": str(tmp_path / "validation.jsonl")}}))
    counts = render_all({"tasks": [task]}, tmp_path)
    labels = [r["label"] for r in rows("train.jsonl", 12) + rows("validation.jsonl", 5)]
    assert counts["instruct_read"] == {"invalid_json": 2, "kept": 17, "not_an_object": 2}
    assert counts["instruct_render"] == {"kept": 17 - labels.count(2), "unmapped_value": labels.count(2)}


def test_parquet_source(tmp_path):
    for split_file, n in (("train.jsonl", 12), ("validation.jsonl", 5)):
        pq.write_table(pa.Table.from_pylist(rows(split_file, n)), tmp_path / split_file.replace("jsonl", "parquet"),
                       row_group_size=4)
    task = three_labels(sentiment_task({"format": "parquet", "splits": {
        "train": str(tmp_path / "train.parquet"), "eval": str(tmp_path / "validation.parquet")}}))
    render_all({"tasks": [task]}, tmp_path)


def test_hugging_face_save_to_disk_folder(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the optional 'datasets' library is not installed")
    folder = tmp_path / "poems"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows("train.jsonl", 12)),
                          "validation": datasets.Dataset.from_list(rows("validation.jsonl", 5))}).save_to_disk(str(folder))
    task = three_labels(sentiment_task({"format": "hf_disk", "path": str(folder),
                                        "splits": {"train": "train", "eval": "validation"}}))
    render_all({"tasks": [task]}, tmp_path)
    task["source"]["splits"]["eval"] = "test"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"tasks": [task]}))
    with pytest.raises(RegistryError, match="has no split 'test'"):
        load_checked_registry(str(path))


def test_code_tasks_from_parquet_documents(tmp_path):
    """Documents as Mono's --write_documents writes them (id, path, text) feed the code tasks."""
    import tarfile

    from transforms.instruct.code_tasks import python_functions

    with tarfile.open(ROOT / "samples" / "mono" / "archives" / "click-8.1.7.tar.gz") as tar:
        texts = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode("utf-8") for m in tar.getmembers()
                 if m.name.endswith(("src/click/utils.py", "src/click/globals.py"))}
    docs = [{"id": f"pallets/click:{path}", "path": path, "text": text} for path, text in sorted(texts.items())]
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "documents-00000-of-00001.parquet")
    data = yaml.safe_load((SAMPLES / "tasks.yaml").read_text())
    task = next(t for t in data["tasks"] if t["name"] == "code_function_to_docstring")
    task["source"] = {"format": "parquet", "extract": "python_functions", "eval_fraction": 0.3,
                      "splits": {"train": str(tmp_path / "documents-*.parquet")}}
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": [task]}))
    registry = load_checked_registry(str(path))
    functions = [(fid, rec) for doc in docs for outcome, fid, rec in python_functions(doc["id"], doc["path"], doc["text"])
                 if outcome == "kept"]
    assert len(functions) > 10
    with beam.Pipeline(runner="FnApiRunner") as pipeline:
        examples, _ = pipeline | ReadAndRender(registry, seed=0)
        got = examples | beam.Map(lambda e: (e.id, e.split, e.template, e.target))
        task = registry.task("code_function_to_docstring")
        want = []
        for fid, rec in functions:
            split = code_split(fid, 0.3)
            # training: the template its hash picks; evaluation: each forward one (the docstring)
            indexes = [template_index(0, task.name, fid)] if split == "train" else list(range(8))
            for index in indexes:
                target = render(task, index, example_fields(task, rec))[1]
                assert target in (rec["docstring"], rec["code"])
                assert split == "train" or target == rec["docstring"]
                want.append((f"{task.name}/{fid}", split, index, target))
        assert_that(got, equal_to(want))
    assert {split for _, split, _, _ in want} == {"train", "eval"}
