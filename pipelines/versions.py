"""The layout of a dataset version on any Beam filesystem, and the file moves that publish one.

A version is ROOT/DATASET/VERSION/: ``--output`` names it. A run writes into
ROOT/DATASET/_staging/VERSION/ and publishes by moving the files into the version folder, then
writing ``manifest.json`` last; a version folder with a manifest is never written again.
"""

from __future__ import annotations

import json
import re

from apache_beam.io.filesystems import FileSystems

from pipelines.driver import UsageError
from schemas.files import join

STAGING_DIR = "_staging"
# Marks a version folder whose files are being moved in: it is ours, and without a manifest it is
# the leftover of an interrupted publish, safe to clear on the rerun.
PUBLISHING_MARKER = "_PUBLISHING"
# In the staging folder: the run's scratch statistics (removed at publish) and, for a submitted
# job, the job id the finalize step checks.
RUN_STATS_DIR = "_run"
JOB_FILE = "job.json"
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def split_version(output: str) -> tuple[str, str]:
    """``ROOT/DATASET/VERSION`` -> (``ROOT/DATASET``, ``VERSION``), or a UsageError."""
    trimmed = output.rstrip("/")
    folder, _, version = trimmed.rpartition("/")
    if not folder or not VERSION_NAME.fullmatch(version):
        raise UsageError(
            f"--output: {output} must be a version folder ROOT/DATASET/VERSION, VERSION made of letters,"
            " digits and . _ + - (starting with a letter or digit)"
        )
    return folder, version


def staging_folder(output: str) -> str:
    folder, version = split_version(output)
    return join(join(folder, STAGING_DIR), version)


def files_under(folder: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([join(folder, "**")])[0].metadata_list)


def remove_tree(folder: str) -> None:
    """Delete every file under ``folder``, then the folder: object stores (gs://) have no folders,
    so a folder's existence cannot be asked, only its files listed."""
    files = files_under(folder)
    if files:
        FileSystems.delete(files)
    if FileSystems.exists(folder):
        FileSystems.delete([folder])


def remove(path: str) -> None:
    """Delete a file or folder if it exists."""
    if FileSystems.exists(path):
        FileSystems.delete([path])


def move_into_version(staging: str, version: str) -> None:
    """Move the staged files into the version folder (marked as publishing until the manifest)."""
    if not FileSystems.exists(version):
        FileSystems.mkdirs(version)
    with FileSystems.create(join(version, PUBLISHING_MARKER)) as handle:
        handle.write(staging.encode("utf-8"))
    sources = files_under(staging)
    prefix = staging.rstrip("/") + "/"
    targets = [join(version, path[len(prefix):]) for path in sources]
    for target in sorted({t.rsplit("/", 1)[0] for t in targets}):
        if not FileSystems.exists(target):
            FileSystems.mkdirs(target)
    if sources:
        FileSystems.rename(sources, targets)
    remove_tree(staging)


def json_bytes(value: dict) -> bytes:
    """The bytes ``write_json_file`` writes (so a manifest's sha256 is known before it is written)."""
    return json.dumps(value, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def write_json_file(path: str, value: dict) -> None:
    """Write JSON through a temporary name and rename, so readers never see half a file."""
    temporary = path + ".tmp"
    with FileSystems.create(temporary) as handle:
        handle.write(json_bytes(value))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])

