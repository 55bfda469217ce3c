"""Aliases of dataset versions: ``sluice datasets tag ROOT/DATASET/VERSION ALIAS``.

An alias is a small JSON file ``ROOT/DATASET/@ALIAS`` naming one published version of DATASET
(``{"alias", "dataset", "version", "manifest_sha256", "tagged_by", "tagged_at", "previous"}``), so
"the current Mono" is a path, ``ROOT/mono/@latest``, that every reader resolves
(``schemas.dataset_version.resolve``) to the version it names when it is given. Tagging again
moves the alias; the file keeps the version it pointed to before (``previous``).

The file is written whole under a temporary name in the same folder, then moved over the alias:
on a local filesystem the move is a rename, which replaces the alias atomically; on ``gs://`` the
move is a copy (one object write: readers see the old or the new alias, never a part of one) then
a delete of the temporary object. Two tags of one alias at the same instant: the last move wins,
and its ``previous`` may name the version before both.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid

import fsspec

from pipelines.driver import UsageError
from pipelines.manifests import utc_now
from pipelines.versions import VERSION_NAME
from schemas import dataset_version

TAGGED_BY_ENV = "SLUICE_TAGGED_BY"  # who tags, where user@host says nothing (a scheduler's pod)


def tagged_by() -> str:
    """Who tags: $SLUICE_TAGGED_BY (e.g. the DAG's ``airflow:sluice_codegen``), else user@host."""
    if os.environ.get(TAGGED_BY_ENV):
        return os.environ[TAGGED_BY_ENV]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for the uid (containers)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def checked(call, *args):
    """``call(*args)`` (schemas.dataset_version), its DatasetError a UsageError."""
    try:
        return call(*args)
    except dataset_version.DatasetError as err:
        raise UsageError(str(err)) from None


def tag_target(version: str) -> tuple[str, str, dict, str]:
    """(ROOT/DATASET, VERSION, manifest, manifest sha256) of a published version to tag (itself
    given directly or by an alias), or a UsageError: only a whole, published version with a valid
    manifest, never a split folder or a folder whose manifest names another version."""
    resolved = checked(dataset_version.resolve, version).rstrip("/")
    dataset_folder, _, name = resolved.rpartition("/")
    if not dataset_folder or not VERSION_NAME.fullmatch(name):
        raise UsageError(f"{version}: not a version folder ROOT/DATASET/VERSION")
    try:
        manifest, sha256 = checked(dataset_version.read_manifest_file, resolved)
    except NotADirectoryError:  # a file where the version folder should be
        raise UsageError(f"{resolved}: not a published version (a file, not a version folder)") from None
    if manifest["version"].get("split") or manifest["version"]["name"] != name:
        raise UsageError(f"{resolved}: its manifest names {dataset_version.version_label(manifest)};"
                         " tag the version folder itself (ROOT/DATASET/VERSION)")
    return dataset_folder, name, manifest, sha256


def previous_version(dataset_folder: str, alias: str):
    """The version the alias names now, or None (no alias yet, or a file that is not one, replaced)."""
    try:
        return dataset_version.read_alias(dataset_folder, alias)["version"]
    except dataset_version.DatasetError:
        return None


def write_atomically(path: str, data: bytes) -> None:
    """``data`` into ``path`` through a temporary file beside it and a move (see the module's doc)."""
    fs, target = fsspec.core.url_to_fs(path)
    folder, _, name = target.rpartition("/")
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    fs.pipe_file(temporary, data)
    try:
        fs.mv(temporary, target)
    finally:
        if fs.exists(temporary):
            fs.rm(temporary)


def tag(version: str, alias: str) -> tuple[str, dict]:
    """Point ``ROOT/DATASET/@alias`` at ``version`` (a published version of DATASET): (the alias
    file, the record written)."""
    dataset_folder, name, manifest, sha256 = tag_target(version)
    path = checked(dataset_version.alias_path, dataset_folder, alias)
    record = {"alias": alias, "dataset": manifest["dataset"], "version": name, "manifest_sha256": sha256,
              "tagged_by": tagged_by(), "tagged_at": utc_now(),
              "previous": previous_version(dataset_folder, alias)}
    write_atomically(path, json.dumps(record, indent=2, sort_keys=True).encode("utf-8") + b"\n")
    return path, record


def format_tag(path: str, record: dict) -> str:
    was = f" (was {record['previous']})" if record["previous"] and record["previous"] != record["version"] else ""
    return f"tagged {path} -> {record['version']}{was}"


def dataset_aliases(dataset_folder: str) -> dict:
    """``{alias: version}`` of every alias file in ``dataset_folder`` (any fsspec URL); a file
    named as an alias that is not one is a UsageError, since what it points to cannot be told."""
    fs, base = fsspec.core.url_to_fs(dataset_folder)
    found = {}
    for path in sorted(fs.glob(f"{base.rstrip('/')}/{dataset_version.ALIAS_PREFIX}*")):
        name = path.rsplit("/", 1)[1][len(dataset_version.ALIAS_PREFIX):]
        if dataset_version.ALIAS_NAME.fullmatch(name):  # any other name is never written or resolved
            found[name] = checked(dataset_version.read_alias, dataset_folder.rstrip("/"), name)["version"]
    return found
