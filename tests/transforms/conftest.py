"""Shared fixtures for the transform tests: the real sample corpus and Beam helpers.

Pipelines run on the in-process FnApiRunner (never the default runner, which fetches Prism).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter

from transforms.stats.counting import NAMESPACE_PREFIX
from transforms.sources.archive_reader import decode_source
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.sources.repo_list import parse_manifest_line

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
MANIFEST = SAMPLES / "mono" / "manifest.jsonl"
ARCHIVES = SAMPLES / "mono" / "archives"


def _sources_table() -> dict[str, dict[str, str]]:
    """Rows of the table in samples/SOURCES.md, keyed by GitHub repo name."""
    lines = (SAMPLES / "SOURCES.md").read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| project |"))
    names = [c.strip() for c in lines[header].strip("|").split("|")]
    rows = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = dict(zip(names, (c.strip() for c in line.strip("|").split("|"))))
        repo = cells["GitHub repo"].split("]", 1)[0].lstrip("[")
        rows[repo] = cells
    return rows


@pytest.fixture(scope="session")
def sources() -> dict[str, dict[str, str]]:
    rows = _sources_table()
    assert len(rows) == 14
    return rows


@pytest.fixture(scope="session")
def manifest_records() -> list[dict]:
    return [json.loads(line) for line in MANIFEST.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sample_repos():
    """The sample manifest parsed line by line, archives resolved to the real files."""
    repos = []
    for number, line in enumerate(MANIFEST.read_bytes().splitlines(keepends=True), start=1):
        if line.strip():
            repos.append(parse_manifest_line(line, f"manifest.jsonl:{number}", str(MANIFEST)))
    assert len(repos) == 14
    return repos


@pytest.fixture(scope="session")
def sample_python_files() -> dict[str, str]:
    """{"<archive>:<path>": text} of every UTF-8 .py file of every sample archive."""
    files = {}
    for archive in sorted(ARCHIVES.glob("*.tar.gz")):
        for member in iter_members(str(archive), ArchiveLimits(), want=lambda p: p.endswith(".py")):
            text, reason = decode_source(member.data)
            assert reason is None
            files[f"{archive.name}:{member.path}"] = text
    assert len(files) > 400
    return files


def _plant(text: str, snippet: str) -> str:
    lines = text.splitlines(keepends=True)
    tops = [i for i, line in enumerate(lines) if line.startswith(("def ", "class "))]
    at = min(tops, key=lambda i: abs(i - len(lines) // 2)) if tops else len(lines)
    if at and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    return "".join(lines[:at]) + snippet.rstrip("\n") + "\n\n\n" + "".join(lines[at:])


@pytest.fixture
def plant():
    """plant(text, snippet): the file with the snippet inserted before the top-level definition
    nearest its middle, as a copied benchmark problem would sit in a real file."""
    return _plant


def new_pipeline() -> beam.Pipeline:
    return beam.Pipeline(runner="FnApiRunner")


def run(pipeline: beam.Pipeline):
    result = pipeline.run()
    result.wait_until_finish()
    return result


def counters(result, stage: str) -> dict[str, int]:
    """{counter name: committed value} of one stage's namespace."""
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE_PREFIX + stage))
    out = {}
    for counter in query["counters"]:
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + counter.committed
    return out


@pytest.fixture
def beam_helpers():
    """(new_pipeline, run, counters) so test modules need not import this file."""
    return new_pipeline, run, counters


def add_member(tar: tarfile.TarFile, name: str, data: bytes = b"", type=tarfile.REGTYPE,
               linkname: str = "", size: int | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.mode = 0o644
    info.size = len(data) if size is None else size
    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


@pytest.fixture
def make_tar(tmp_path):
    """make_tar(name, [(member name, data) or (name, data, type, linkname)...]) -> path of a .tar.gz."""

    def make(name: str, members) -> Path:
        path = tmp_path / name
        with tarfile.open(path, mode="w:gz") as tar:
            for member in members:
                add_member(tar, *member)
        return path

    return make
