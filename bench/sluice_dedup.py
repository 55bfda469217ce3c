"""Sluice's near-dedup as a benchmark method: the real Beam transform over a list of documents.

Runs ``transforms.dedup.near.NearDedup`` on Beam's Python runner (in-process FnApiRunner, or
``workers`` processes) and returns the ids it removed, read back from the rejects it wrote.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

# First: it puts the repository on sys.path, and it and bench/ on PYTHONPATH, since worker
# processes (--direct_running_mode=multi_processing) import this module and Sluice too.
import harness  # noqa: F401
import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from schemas.records import Document  # noqa: E402
from transforms.dedup.near import NearDedup, NearDedupConfig  # noqa: E402


def to_document(record: dict) -> Document:
    text = record["text"]
    return Document(id=record["id"], repo_name=record["id"].split(":", 1)[0], path=record["id"],
                    text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    stars=record.get("stars") or 0, license=None, license_source=None,
                    license_confidence=None, ref=None)


def write_input(docs: list[dict], path: str) -> None:
    """The documents as the JSONL file a pipeline reads (one JSON object a line)."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in docs:
            handle.write(json.dumps(record) + "\n")


def run(docs: list[dict], verify: str = "signature", workers: int = 1, threshold: float = 0.8) -> set[str]:
    """The ids NearDedup removes from ``docs`` (dicts with id, text and optionally stars)."""
    with tempfile.TemporaryDirectory() as tmp:
        # Documents enter from a file, as in a pipeline: beam.Create would pickle the whole corpus
        # into the job graph and the benchmark would time bz2 instead of dedup.
        write_input(docs, f"{tmp}/docs.jsonl")
        return run_file(f"{tmp}/docs.jsonl", verify, workers, threshold)


def run_file(path: str, verify: str = "signature", workers: int = 1, threshold: float = 0.8) -> set[str]:
    """``run`` on a JSONL file already written: reading and parsing it is part of the stage."""
    args = ["--runner=FnApiRunner"]
    if workers > 1:
        args += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
            _, rejects = (
                pipeline
                | beam.io.ReadFromText(path)
                | beam.Map(lambda line: to_document(json.loads(line)))
                | NearDedup(NearDedupConfig(threshold=threshold, verify=verify))
            )
            (rejects
             | beam.Map(lambda r: json.dumps({"id": r.id, "kept": r.detail}))
             | beam.io.WriteToText(f"{tmp}/removed", file_name_suffix=".jsonl"))
        removed = set()
        for out in Path(tmp).glob("removed*.jsonl"):
            removed.update(json.loads(line)["id"] for line in out.read_text().splitlines())
        return removed


def run_signature(docs):
    return run(docs, verify="signature")


def run_exact(docs):
    return run(docs, verify="exact")
