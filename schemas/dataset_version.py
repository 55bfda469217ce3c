"""A published dataset version read back through its manifest, for any trainer (no Beam).

A version is a folder (local path or any fsspec URL) with ``manifest.json`` and the shards it
lists. Readers find shard files, record counts and checksums in the manifest and nowhere else,
and check a shard's bytes against its sha256 before trusting it, since a silently damaged shard
would train on garbage without any error. ``verify_version`` is the one full check of a version
(``sluice datasets verify`` prints its lines); ``verify_file`` the trainer's per-shard one.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import stat
from typing import Callable, NamedTuple, Optional

import fsspec
import pyarrow as pa
import pyarrow.ipc
from fsspec.implementations.local import LocalFileSystem

from schemas import manifest as manifest_schema
from schemas import tfrecord
from schemas.json_lines import nesting_depth_exceeds
from schemas.files import HashingReader, join, json_kind, relative_problem, sha256_of

FORMATS = ("arrow", "tfrecord")
# Bounds on a manifest before it is parsed: a version of 100,000 shards is ~70 MB; the pipelines
# nest 5 deep. A larger or deeper file is refused as invalid, not read into memory or recursed into.
MAX_MANIFEST_BYTES = 256 << 20
MAX_MANIFEST_DEPTH = 64
# An alias is the file ROOT/DATASET/@NAME naming one version of DATASET (``sluice datasets tag``).
ALIAS_PREFIX = "@"
ALIAS_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_ALIAS_BYTES = 64 << 10


class DatasetError(ValueError):
    """A dataset version that cannot be read as published (missing, damaged, inconsistent)."""


class NoManifest(DatasetError):
    """No ``manifest.json`` in the folder: not a version, or one not (yet) published."""


class OutsideVersion(DatasetError):
    """A path from a manifest that does not name a file inside its version folder."""

    def __init__(self, version: str, relative, problem: str):
        super().__init__(f"{version}: manifest path {relative!r} {problem}")
        self.problem = problem


# What reading a manifest that is not there raises: no such file, or (local paths) a regular file
# where the version folder should be, as when a model file's folder is tried as a version.
MISSING = (NoManifest, NotADirectoryError)


class ManifestFile(NamedTuple):
    """A manifest and the sha256 of its bytes: what a lineage records of a parent version and an
    ``--all_holdouts`` index of each split."""
    manifest: dict
    sha256: str


def _local_path(url: str) -> Optional[str]:
    """The local path of ``url``, or None when it is on another filesystem."""
    fs, path = fsspec.core.url_to_fs(url)
    return path if isinstance(fs, LocalFileSystem) else None


def member_path(version: str, relative) -> str:
    """``version/relative`` for a path read from the version's manifest, or OutsideVersion: the
    path must be a relative name (no ``..``, absolute path, URL or empty segment) and, on a local
    filesystem, must still be inside the version folder once its links are resolved. Every reader
    opens manifest paths through this, so a crafted manifest cannot make it read another file."""
    problem = relative_problem(relative)
    if problem:
        raise OutsideVersion(version, relative, problem)
    url = join(version, relative)
    local = _local_path(version)
    if local is not None:
        root, target = os.path.realpath(local), os.path.realpath(join(local, relative))
        if os.path.commonpath([root, target]) != root:
            raise OutsideVersion(version, relative, f"leads outside the version folder (to {target})")
    return url


def one_line(text, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters (an error message quoting a manifest)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _manifest_bytes(version: str) -> bytes:
    url = join(version, manifest_schema.MANIFEST_NAME)
    try:
        local = _local_path(url)
        if local is not None and os.path.exists(local) and not stat.S_ISREG(os.stat(local).st_mode):
            raise DatasetError(f"{version}: invalid manifest ({manifest_schema.MANIFEST_NAME} is not a regular file)")
        with fsspec.open(url, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise NoManifest(f"{version}: not a published version (no {manifest_schema.MANIFEST_NAME})") from None
    except NotADirectoryError:
        raise
    except OSError as err:
        raise DatasetError(f"{version}: unreadable manifest ({one_line(err)})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise DatasetError(f"{version}: invalid manifest (over {MAX_MANIFEST_BYTES:,} bytes)")
    return raw


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse_manifest(version: str, raw: bytes, validate: bool) -> dict:
    """The manifest in ``raw``, or a one-line DatasetError naming ``version`` and what is wrong:
    not JSON, nested deeper than MAX_MANIFEST_DEPTH, not an object, or (``validate``) not a valid
    manifest (schemas/manifest.py: keys, types, paths, totals)."""
    try:
        text = raw.decode("utf-8")
        if nesting_depth_exceeds(text, MAX_MANIFEST_DEPTH):
            raise ValueError(f"nested deeper than {MAX_MANIFEST_DEPTH}")
        manifest = json.loads(text, parse_constant=_no_constant)
        if not isinstance(manifest, dict):
            raise ValueError(f"the manifest is {json_kind(manifest)}, not an object")
        if validate:
            manifest_schema.validate(manifest)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetError(f"{version}: invalid manifest ({one_line(err)})") from None
    return manifest


def read_manifest_file(version: str, validate: bool = True) -> ManifestFile:
    """A version folder's manifest (validated unless ``validate`` is false; a JSON object of bounded
    size and depth either way) and the sha256 of its bytes. Raises one of MISSING when there is
    none, a one-line DatasetError when it is invalid."""
    raw = _manifest_bytes(version)
    return ManifestFile(_parse_manifest(version, raw, validate), hashlib.sha256(raw).hexdigest())


def read_manifest(version: str) -> dict:
    """The validated manifest of a version folder."""
    return read_manifest_file(version).manifest


def require_stream(manifest: dict, version: str) -> None:
    """Refuse a version that is only an index of split folders (instruct's ``--all_holdouts``):
    its root has no shards, and reading it as an empty stream would hide the mistake."""
    splits = manifest.get("splits") or {}
    if splits and not manifest["shards"]:
        names = sorted(splits)
        raise DatasetError(f"{version}: an index of {len(names)} splits with no shards of its own; read one"
                           f" split folder, e.g. {join(version, splits[names[0]].get('path', names[0]))}")


def read_stream_manifest(version: str) -> dict:
    """The manifest of a version that holds shards (``read_manifest`` + ``require_stream``)."""
    manifest = read_manifest(version)
    require_stream(manifest, version)
    return manifest


def presented(version: str, present, *args):
    """``present(*args)``, text drawn from a validated manifest of ``version`` (summary, show, diff,
    report). The sections those draw on beyond the checked shape (sets, languages, mixture,
    near_dedup, histograms...) are checked by use: one of the wrong shape is a one-line
    DatasetError naming the version, not a traceback."""
    try:
        return present(*args)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise DatasetError(f"{version}: invalid manifest (cannot present it: "
                           f"{one_line(f'{type(err).__name__} {err}')})") from None


# Aliases ---------------------------------------------------------------------------------------

def alias_path(dataset_folder: str, name: str) -> str:
    """The alias file ``ROOT/DATASET/@NAME``, or a DatasetError for a name outside ALIAS_NAME."""
    if not isinstance(name, str) or not ALIAS_NAME.fullmatch(name):
        raise DatasetError(f"alias {name!r}: an alias name is a lowercase letter, then lowercase letters,"
                           f" digits, _ and - (at most 64), e.g. latest")
    return join(dataset_folder, ALIAS_PREFIX + name)


def split_alias(path: str) -> Optional[tuple[str, str, str]]:
    """``ROOT/DATASET/@NAME[/rest]`` -> (``ROOT/DATASET``, ``NAME``, ``rest``), or None for a path
    without an alias segment (the first segment past the first that is ``@`` + an alias name)."""
    segments = path.rstrip("/").split("/")
    for index in range(1, len(segments)):
        segment = segments[index]
        if segment.startswith(ALIAS_PREFIX) and ALIAS_NAME.fullmatch(segment[len(ALIAS_PREFIX):]):
            return "/".join(segments[:index]), segment[len(ALIAS_PREFIX):], "/".join(segments[index + 1:])
    return None


def read_alias(dataset_folder: str, name: str) -> dict:
    """The alias file ``dataset_folder/@name`` (JSON: version, manifest_sha256, tagged_by,
    tagged_at, previous), or a one-line DatasetError: no such alias, or a file that is not one."""
    path = alias_path(dataset_folder, name)
    try:
        with fsspec.open(path, "rb") as handle:
            raw = handle.read(MAX_ALIAS_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetError(f"{path}: no such alias (sluice datasets tag ROOT/DATASET/VERSION {name})") from None
    except (IsADirectoryError, OSError) as err:
        raise DatasetError(f"{path}: unreadable alias ({one_line(err)})") from None
    try:
        if len(raw) > MAX_ALIAS_BYTES:
            raise ValueError(f"over {MAX_ALIAS_BYTES:,} bytes")
        alias = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        if not isinstance(alias, dict):
            raise ValueError(f"it is {json_kind(alias)}, not an object")
        version = alias.get("version")
        problem = relative_problem(version)
        if problem or "/" in version:
            raise ValueError(f"version {version!r} is not a folder name")
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetError(f"{path}: invalid alias file ({one_line(err)})") from None
    return alias


def resolve(path: str) -> str:
    """``ROOT/DATASET/@ALIAS[/rest]`` -> ``ROOT/DATASET/VERSION[/rest]`` (the version the alias file
    names); any other path unchanged. Readers resolve once, where a path is given, and record the
    version, never the alias, since an alias moves and a record must stay true."""
    found = split_alias(path)
    if found is None:
        return path
    dataset_folder, name, rest = found
    version = join(dataset_folder, read_alias(dataset_folder, name)["version"])
    return join(version, rest) if rest else version


def version_label(manifest: dict) -> str:
    """``dataset/version[/split]`` as a manifest names itself (format 2), for lineage records."""
    version = manifest["version"]
    return "/".join(part for part in (manifest["dataset"], version["name"], version.get("split")) if part)


def manifest_fingerprint(manifest: dict) -> str:
    """Identity of a dataset version: sha256 of its manifest's canonical JSON."""
    return manifest_schema.fingerprint(manifest)


def shard_files(manifest: dict, fmt: str) -> list[dict]:
    """One entry per shard, in shard order: ``{"path", "bytes", "sha256", "records"}``."""
    if fmt not in FORMATS:
        raise DatasetError(f"format must be one of {FORMATS}, got {fmt!r}")
    out = []
    for shard in sorted(manifest["shards"], key=lambda s: s["shard"]):
        files = [f for f in shard["files"] if f["format"] == fmt]
        if len(files) != 1:
            raise DatasetError(f"shard {shard['shard']} has {len(files)} {fmt} files in the manifest")
        out.append({**files[0], "records": shard["records"]})
    return out


# Verification ----------------------------------------------------------------------------------

def count_records(fmt: str, handle) -> int:
    """Records in a shard file (TFRecord framing with its CRCs checked, or Arrow IPC stream rows)."""
    if fmt == "tfrecord":
        return sum(1 for _ in tfrecord.read_records(handle, verify=True))
    if fmt == "arrow":
        return sum(batch.num_rows for batch in pa.ipc.open_stream(handle))
    raise ValueError(f"unknown shard format {fmt}")


def file_problems(handle, entry: dict, records: Optional[int] = None) -> list[str]:
    """What one read of an opened shard file finds wrong against its manifest ``entry`` (``format``,
    ``bytes``, ``sha256``): unreadable framing, size, sha256 and, given ``records``, the record count.
    Lines start with ``entry["path"]``; empty when the file matches."""
    name, reader, counted = entry["path"], HashingReader(handle), None
    problems = []
    if records is not None:
        try:
            counted = count_records(entry["format"], reader)
        except (ValueError, OSError, pa.ArrowException) as err:
            problems.append(f"{name}: unreadable {entry['format']} ({err})")
    size, sha256 = reader.drain()
    if size != entry["bytes"]:
        problems.append(f"{name}: {size} bytes, manifest says {entry['bytes']}")
    if sha256 != entry["sha256"]:
        problems.append(f"{name}: sha256 {sha256[:16]}..., manifest says {entry['sha256'][:16]}...")
    if counted is not None and counted != records:
        problems.append(f"{name}: {counted} records, manifest says {records}")
    return problems


def verify_file(url: str, expected_bytes: int, expected_sha256: str) -> None:
    """Raise DatasetError unless the file at ``url`` has the manifest's size and sha256 (a trainer's
    check of a shard before first use; :func:`verify_version` checks a whole version)."""
    with fsspec.open(url, "rb") as handle:
        size, sha256 = sha256_of(handle)
    if size != expected_bytes or sha256 != expected_sha256:
        raise DatasetError(f"{url}: {size} bytes sha256 {sha256[:12]}..., manifest says "
                           f"{expected_bytes} bytes sha256 {expected_sha256[:12]}... (damaged or replaced shard)")


Check = Callable[[], list]  # one unit of verify's work: its problem lines


def _split_checks(fs, folder: str, entry: dict) -> list[Check]:
    """An ``--all_holdouts`` split in ``folder``: its manifest's sha256 against the index (read now),
    then the checks of its files."""
    name = manifest_schema.MANIFEST_NAME
    try:
        raw = _manifest_bytes(folder)
    except MISSING:
        return [lambda: [f"{name}: missing"]]
    sha256 = hashlib.sha256(raw).hexdigest()
    if sha256 != entry["manifest_sha256"]:
        problem = f"{name}: sha256 {sha256[:16]}..., the version's manifest says {entry['manifest_sha256'][:16]}..."
        return [lambda: [problem]]
    return _version_checks(fs, folder, _parse_manifest(folder, raw, validate=True))


def _listed_file_problems(fs, version: str, entry: dict, records: Optional[int]) -> list[str]:
    """One file the manifest lists: inside the version folder, present, a regular file, and its
    size, sha256 and (given ``records``) record count as listed."""
    try:
        path = member_path(version, entry["path"])
    except OutsideVersion as err:
        return [f"{entry['path']}: {err.problem}"]
    if not fs.exists(path):
        return [f"{entry['path']}: missing"]
    if not fs.isfile(path):
        return [f"{entry['path']}: not a regular file"]
    with fs.open(path, "rb") as handle:
        return file_problems(handle, entry, records)


def _prefixed(prefix: str, check: Check) -> Check:
    return lambda: [f"{prefix}/{problem}" for problem in check()]


def _version_checks(fs, version: str, manifest: dict) -> list[Check]:
    """Every check of a version, in report order: each split's (its lines prefixed with its path),
    each listed shard file, each eval file, then the ``train-*`` files the manifest does not list.
    Split manifests are read here, so an unreadable one raises before any file is read."""
    checks: list[Check] = []
    for entry in manifest.get("splits", {}).values():
        try:
            folder = member_path(version, entry["path"])
        except OutsideVersion as err:
            checks.append(lambda line=f"{entry['path']}: {err.problem}": [line])
            continue
        checks += [_prefixed(entry["path"], check) for check in _split_checks(fs, folder, entry)]
    listed = set()
    for shard in manifest["shards"]:
        for entry in shard["files"]:
            listed.add(entry["path"])
            checks.append(lambda e=entry, n=shard["records"]: _listed_file_problems(fs, version, e, n))
    for entry in (manifest.get("eval") or {}).get("files", []):
        checks.append(lambda e=entry: _listed_file_problems(fs, version, e, None))
    base = fsspec.core.url_to_fs(version)[1].rstrip("/")

    def unlisted() -> list[str]:
        names = sorted(p.rsplit("/", 1)[1] for p in fs.glob(join(base, "train-*")))
        return [f"{name}: not in the manifest" for name in names if name not in listed]
    checks.append(unlisted)
    return checks


def verify_version(version: str, manifest: Optional[dict] = None, jobs: int = 1) -> list[str]:
    """Every problem of a published version, one line each, paths relative to ``version``: each
    shard file's size, sha256 and record count against ``manifest`` (read if not given), each eval
    file's size and sha256 (instruct), shard-like files (``train-*``) it does not list and, for an
    ``--all_holdouts`` index, each split. A path that leads outside the folder is a problem and is
    never opened. ``jobs`` > 1 reads that many files at once (threads: the work is I/O and hashing,
    which release the GIL); the lines come in the same order either way. Empty when the version is
    intact; raises DatasetError only for a manifest that cannot be read."""
    manifest = read_manifest(version) if manifest is None else manifest
    fs = fsspec.core.url_to_fs(version)[0]
    checks = _version_checks(fs, version, manifest)
    if jobs > 1 and len(checks) > 1:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(lambda check: check(), checks))
    else:
        results = [check() for check in checks]
    return [problem for lines in results for problem in lines]


def seq_len_of(manifest: dict) -> Optional[int]:
    for key in ("stream", "config"):
        section = manifest.get(key) or {}
        if isinstance(section, dict) and section.get("seq_len"):
            return int(section["seq_len"])
    return None
