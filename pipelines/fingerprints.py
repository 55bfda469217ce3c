"""Fingerprints of a run's config and inputs, computed before any job starts, and the
``--if_changed`` check against the newest published version of the same dataset.

A scheduled run should not rebuild a dataset whose config and inputs have not changed (a fixed
release such as the Pile), and the check must cost seconds: it reads metadata, not data.

- The **config** fingerprint is the sha256 of the canonical JSON of the config the manifest records,
  less what does not change the output bytes (the output path, the input and tokenizer paths), plus
  the dataset, Sluice's version (a release may change the bytes; a commit that changes none must not
  rebuild everything, so not the git commit) and the tokenizer's sha256.
- The **input** fingerprint is the sha256 of a per-input identity: small files read whole by the
  driver anyway (a Mono manifest, a task registry, benchmark JSONL) by their sha256; data files (Pile
  files, archives on a filesystem, exports, task sources) by path, size and whatever version the
  filesystem gives in ``fsspec``'s ``info()`` (GCS generation and checksums, S3 ETag, a local mtime),
  listed once per folder. A live BigQuery query has no cheap identity: it always counts as changed.

Both go in the manifest (``fingerprints``: ``config``, ``inputs`` and the ``detail`` they hash).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import tempfile
from typing import NamedTuple, Optional

import fsspec

from pipelines.driver import NothingToDo, UsageError, require_file
from pipelines.versions import split_version
from schemas import dataset_version
from schemas import manifest as manifest_schema
from schemas.files import join, sha256_of
from schemas.version import __version__

XCOM_DIR_ENV = "SLUICE_XCOM_DIR"
DEFAULT_XCOM_DIR = "/airflow/xcom"  # KubernetesPodOperator's do_xcom_push reads return.json there
# What fsspec's info() may say of a file's version: GCS generation and checksums, S3/HTTP ETags,
# modification times (local mtime, GCS updated, S3 LastModified).
VERSION_KEYS = ("generation", "md5Hash", "crc32c", "etag", "ETag", "mtime", "updated", "LastModified")
LIVE_QUERY = ("a live BigQuery query: its tables have no cheap identity, so the run always counts as"
              " changed")


@dataclasses.dataclass(frozen=True)
class Fingerprints:
    """What a run is made from: the config and inputs it hashes (each plain JSON)."""

    config: dict
    inputs: dict

    @property
    def config_sha256(self) -> str:
        return manifest_schema.fingerprint(self.config)

    @property
    def inputs_sha256(self) -> str:
        return manifest_schema.fingerprint(self.inputs)

    def section(self) -> dict:
        """The manifest's ``fingerprints`` section."""
        return {"config": self.config_sha256, "inputs": self.inputs_sha256,
                "detail": {"config": self.config, "inputs": self.inputs}}


def fingerprints(dataset: str, config: dict, inputs: dict, tokenizer: Optional[str] = None,
                 drop: tuple = ()) -> Fingerprints:
    """The fingerprints of a run of ``dataset``: ``config`` as the manifest records it, less the
    dotted keys ``drop`` (paths: where an input lives is not what it holds), with the tokenizer
    model's sha256 (``tokenizer``: its path) and Sluice's version."""
    config = manifest_schema.plain(config)
    for key in drop:
        *parents, last = key.split(".")
        section = config
        for parent in parents:
            section = section.get(parent) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(last, None)
    detail = {"dataset": dataset, "sluice_version": __version__, "config": config}
    if tokenizer is not None:
        require_file(tokenizer, "--tokenizer")
        detail["tokenizer"] = small_file(tokenizer)
    return Fingerprints(config=manifest_schema.plain(detail), inputs=manifest_schema.plain(inputs))


# Input identities -------------------------------------------------------------------------------

def small_file(path: str) -> dict:
    """``{bytes, sha256}`` of a file the driver reads whole anyway (no path: the same bytes
    elsewhere are the same input)."""
    with fsspec.open(path, "rb") as handle:
        size, digest = sha256_of(handle)
    return {"bytes": size, "sha256": digest}


def _json_value(value):
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else str(value)


def identity_of(path: str, info: Optional[dict]) -> dict:
    """``{path, bytes, <version keys>}`` from fsspec's ``info()`` of ``path``; ``missing`` if none."""
    if info is None:
        return {"path": path, "missing": True}
    out = {"path": path, "bytes": info.get("size")}
    out.update({key: _json_value(info[key]) for key in VERSION_KEYS if info.get(key) is not None})
    return out


def identities(paths) -> list:
    """The identity of each file (``identity_of``), sorted by path; each folder is listed once
    (one request per folder on an object store, not one per file)."""
    listed: dict = {}
    out = []
    for path in sorted(set(paths)):
        fs, stripped = fsspec.core.url_to_fs(path)
        folder = (str(fs.protocol), posixpath.dirname(stripped))
        if folder not in listed:
            try:
                entries = fs.ls(folder[1], detail=True)
            except (FileNotFoundError, NotADirectoryError):
                entries = []
            listed[folder] = {fs._strip_protocol(e["name"]): e for e in entries}  # noqa: SLF001 - fsspec's own path form
        out.append(identity_of(path, listed[folder].get(stripped)))
    return out


def tree_identities(folder: str) -> list:
    """The identity of every file under ``folder`` (a Hugging Face ``save_to_disk`` folder)."""
    fs, stripped = fsspec.core.url_to_fs(folder)
    found = fs.find(stripped, detail=True)
    prefix = stripped.rstrip("/") + "/"
    return [identity_of(join(folder, name[len(prefix):]), info) for name, info in sorted(found.items())
            if name.startswith(prefix)]


def mono_manifest_inputs(manifest: str) -> dict:
    """A Mono manifest's sha256, and the identity of each archive it names on a filesystem (an
    archive URL is addressed by the manifest's text: its repository and ref)."""
    from transforms.sources.repo_list import resolve_archive

    with fsspec.open(manifest, "rb") as handle:
        raw = handle.read()
    archives = []
    for line in raw.splitlines():
        try:
            archive = json.loads(line).get("archive")
        except (ValueError, AttributeError):
            continue  # the pipeline counts the line as a reject
        if isinstance(archive, str) and archive:
            resolved = resolve_archive(archive, manifest)
            if not resolved.startswith(("http://", "https://")):
                archives.append(resolved)
    return {"manifest": {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()},
            "archives": identities(archives)}


def pile_inputs(patterns) -> dict:
    """The Pile files the patterns match, each by path, size and version (not hashed: ~15 GB each)."""
    from transforms.sources.pile_reader import match_inputs

    try:
        files = match_inputs(patterns)
    except ValueError as err:
        raise UsageError(f"--input: {err}") from None
    return {"files": identities(m.path for m in files)}


def multi_inputs(args, mode: str) -> dict:
    """Multi's rows: the SQL's sha256 and a snapshot's tables' sha256, an export's files, or (live
    query) no identity at all (``always_changed``)."""
    from apache_beam.io.filesystems import FileSystems

    from transforms.sources import github_sql

    query = {"sql_sha256": github_sql.sql_sha256(), "stars_table": args.stars_table}
    if mode == "snapshot":
        try:
            paths = github_sql.check_snapshot(args.bigquery_snapshot, args.stars_table)
        except ValueError as err:
            raise UsageError(f"--bigquery_snapshot: {err}") from None
        return {"source": "snapshot", **query,
                "tables": {name: small_file(path) for name, path in sorted(paths.items())}}
    if mode == "export":
        files = FileSystems.match([args.bigquery_export])[0].metadata_list
        return {"source": "export", **query, "files": identities(m.path for m in files)}
    return {"source": "bigquery", **query, "dataset": args.bigquery_dataset, "always_changed": LIVE_QUERY}


def benchmark_inputs(decontamination: Optional[dict]) -> list:
    """The sha256 of each extra benchmark file (``--benchmark_jsonl``), in the order given."""
    return [small_file(path) for path in (decontamination or {}).get("extra_paths", [])]


def instruct_inputs(registry, registry_path: str) -> dict:
    """The registry's sha256 and each task source's files: JSONL and Parquet by path, size and
    version, a ``save_to_disk`` folder file by file, a Mono manifest as Mono's input."""
    from transforms.instruct.task_sources import split_files

    files, folders, manifests = set(), set(), set()
    for task in registry.tasks:
        source = task.source
        if source.format == "hf_disk":
            folders.add(source.path)
        elif source.format == "mono":
            manifests.update(source.splits.values())
        else:
            files.update(p for split in source.splits for p in split_files(source, split))
    return {"registry": small_file(registry_path), "files": identities(files),
            "hf_disk": {folder: tree_identities(folder) for folder in sorted(folders)},
            "mono": {path: mono_manifest_inputs(path) for path in sorted(manifests)}}


# The check -----------------------------------------------------------------------------------------

class Check(NamedTuple):
    """The outcome of comparing a run with the newest published version of its dataset."""

    changed: bool
    same_as: Optional[str]
    fingerprints: Fingerprints

    def json_line(self) -> str:
        return json.dumps({"changed": self.changed, "same_as": self.same_as,
                           "config_fingerprint": self.fingerprints.config_sha256,
                           "input_fingerprint": self.fingerprints.inputs_sha256}, sort_keys=True)


class Unchanged(NothingToDo):
    """``--if_changed`` and nothing changed: one line naming the version; nothing claimed or published."""


class Checked(NothingToDo):
    """A check-only run (``launch --check_if_changed``): its JSON line; nothing claimed or published."""

    def __init__(self, check: Check):
        super().__init__(check.json_line())
        self.check = check


def newest_version(dataset_folder: str) -> Optional[tuple]:
    """(path, manifest) of the newest published version in ``ROOT/DATASET`` (latest finish time,
    then name), or None. Folders whose manifest cannot be read are no published version."""
    try:
        fs, base = fsspec.core.url_to_fs(dataset_folder)
        found = fs.glob(f"{base.rstrip('/')}/*/{manifest_schema.MANIFEST_NAME}")
    except FileNotFoundError:
        return None
    newest = None
    for manifest_path in found:
        name = manifest_path.rsplit("/", 2)[-2]
        folder = join(dataset_folder, name)
        try:
            manifest = dataset_version.read_manifest(folder)
        except dataset_version.DatasetError:
            continue
        key = (str(manifest["created"].get("finished", "")), name)
        if newest is None or key > newest[0]:
            newest = (key, folder, manifest)
    return None if newest is None else newest[1:]


def check(output: str, found: Fingerprints) -> Check:
    """Whether the run of ``output`` (ROOT/DATASET/VERSION) would change anything: unchanged when
    the newest published version of ROOT/DATASET has the same config and input fingerprints.
    A version without fingerprints (older) and a live query count as changed."""
    if found.inputs.get("always_changed"):
        return Check(True, None, found)
    newest = newest_version(split_version(output)[0])
    if newest is None:
        return Check(True, None, found)
    folder, manifest = newest
    recorded = manifest.get("fingerprints") or {}
    same = (recorded.get("config") == found.config_sha256 and recorded.get("inputs") == found.inputs_sha256)
    return Check(not same, folder if same else None, found)


def gate(args, output: str, found: Fingerprints, mode) -> None:
    """Before a run claims its version: a check-only run ends in Checked; ``--if_changed`` with
    nothing changed ends in Unchanged (one line, exit 0). A finalize step never checks: its job
    ran because something had changed."""
    if mode.mode == "finalize" or not (mode.mode == "check" or getattr(args, "if_changed", False)):
        return
    result = check(output, found)
    if mode.mode == "check":
        raise Checked(result)
    if not result.changed:
        raise Unchanged(f"unchanged: {result.same_as} has the same config and inputs (config sha256"
                        f" {found.config_sha256[:12]}, inputs sha256 {found.inputs_sha256[:12]}); nothing"
                        " published")


def write_xcom(line: str) -> Optional[str]:
    """Write a check's JSON line as the pod's XCom (``$SLUICE_XCOM_DIR``, else /airflow/xcom,
    /return.json) when that folder exists; returns the path written. A local folder the sidecar
    reads, written through a temporary name and renamed so it never reads half a file."""
    folder = os.environ.get(XCOM_DIR_ENV, DEFAULT_XCOM_DIR)
    if not os.path.isdir(folder):
        return None
    path = os.path.join(folder, "return.json")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".return.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(line + "\n")
    os.replace(temporary, path)
    return path
