"""Retention of dataset versions: ``sluice datasets gc ROOT/DATASET --keep N [--dry_run]``.

Deletes the oldest published versions of DATASET beyond the newest N (versions in the order
``sluice datasets list`` sorts them: by name, which for the scheduled runs' dates is by age), and
never deletes:

- a version an alias of DATASET names (``ROOT/DATASET/@ALIAS``; an alias file that cannot be read
  stops gc, since what it protects cannot be told);
- a version named as a parent in the lineage of a kept version: every published version of the
  other datasets under ROOT (their split manifests included) and the kept versions of DATASET,
  transitively. A parent is matched by the last two segments of its recorded path
  (``DATASET/VERSION``), so a parent recorded under another spelling of ROOT still protects;
- anything that is not a published version: staging folders (``_staging/``, whether their run
  lives or not), interrupted publishes, versions with an invalid manifest. These are listed, never
  touched.

A version is deleted by marking it ``_DELETING``, removing its manifest (from then on no reader
sees it as published), then removing the rest; a gc that stops half way leaves a marked folder
without a manifest, which the next gc finishes deleting.
"""

from __future__ import annotations

import dataclasses

import fsspec

from pipelines import aliases, claims, versions
from pipelines.driver import UsageError
from schemas import dataset_version
from schemas import manifest as manifest_schema
from schemas.files import join

DELETING_MARKER = "_DELETING"


@dataclasses.dataclass
class Plan:
    """What gc does to each folder of a dataset: ``keep`` and ``delete`` (published versions, with
    why each is kept), ``finish`` (interrupted deletions) and ``leave`` (not published: why)."""

    keep: dict
    delete: list
    finish: list
    leave: dict


def _manifest(folder: str, validate: bool):
    try:
        return dataset_version.read_manifest_file(folder, validate=validate).manifest
    except (dataset_version.DatasetError, NotADirectoryError):
        return None


def split_folders(folder: str, manifest: dict) -> list[str]:
    """The split folders an ``--all_holdouts`` index lists (those inside the version folder)."""
    out = []
    for entry in (manifest.get("splits") or {}).values():
        try:
            out.append(dataset_version.member_path(folder, entry.get("path") if isinstance(entry, dict) else None))
        except dataset_version.OutsideVersion:
            continue
    return out


def lineage_parents(folder: str, manifest: dict) -> set:
    """``(DATASET, VERSION)`` of every parent the manifest's lineage names, and its splits' lineages."""
    found = set()
    for manifest_of in [manifest] + [_manifest(split, validate=False) for split in split_folders(folder, manifest)]:
        parents = ((manifest_of or {}).get("lineage") or {}).get("parents") or {}
        for parent in (parents.values() if isinstance(parents, dict) else ()):
            path = parent.get("path") if isinstance(parent, dict) else None
            if isinstance(path, str) and path.rstrip("/").count("/") >= 1:
                found.add(tuple(path.rstrip("/").rsplit("/", 2)[-2:]))
    return found


def other_datasets_parents(fs, root: str, root_path: str, dataset: str) -> set:
    """Parents named by every version (valid manifest or not, as long as it parses) of the other
    datasets under ROOT."""
    found = set()
    for path in sorted(fs.glob(f"{root_path}/*/*/{manifest_schema.MANIFEST_NAME}")):
        dataset_folder, version = path.rsplit("/", 3)[-3:-1]
        if dataset_folder != dataset:
            folder = join(root, f"{dataset_folder}/{version}")
            manifest = _manifest(folder, validate=False)
            if manifest is not None:
                found |= lineage_parents(folder, manifest)
    return found


def plan(dataset_folder: str, keep: int) -> Plan:
    """What ``gc DATASET_FOLDER --keep keep`` does (reads only)."""
    fs, base = fsspec.core.url_to_fs(dataset_folder)
    base = base.rstrip("/")
    root, _, dataset = dataset_folder.rstrip("/").rpartition("/")
    if not root or not fs.isdir(base):
        raise UsageError(f"{dataset_folder}: no such dataset folder ROOT/DATASET")
    published, leave, finish = {}, {}, []
    for folder in sorted(fs.ls(base, detail=False)):
        name = folder.rstrip("/").rsplit("/", 1)[1]
        if name == versions.STAGING_DIR:
            for staged in sorted(fs.ls(folder, detail=False)):
                leave[f"{name}/{staged.rsplit('/', 1)[1]}"] = claims.staging_status(fs, staged)
            continue
        if not versions.VERSION_NAME.fullmatch(name) or not fs.isdir(folder):
            continue  # alias files, temporary files: not versions
        url = join(dataset_folder.rstrip("/"), name)
        has_manifest = fs.exists(f"{folder}/{manifest_schema.MANIFEST_NAME}")
        if has_manifest:
            manifest = _manifest(url, validate=True)
            if manifest is None:
                leave[name] = "invalid manifest"
            else:
                published[name] = manifest
        elif fs.exists(f"{folder}/{DELETING_MARKER}"):
            finish.append(name)
        elif fs.exists(f"{folder}/{versions.PUBLISHING_MARKER}"):
            leave[name] = "interrupted publish"
        else:
            leave[name] = "no manifest: not a version"
    order = sorted(published)
    reasons = {name: [f"newest {keep}"] for name in order[-keep:]}
    for alias, version in sorted(aliases.dataset_aliases(dataset_folder).items()):
        if version in published:
            reasons.setdefault(version, []).append(f"alias @{alias}")
    named = other_datasets_parents(fs, root, base.rpartition("/")[0], dataset)
    while True:  # kept versions protect their parents, which may protect theirs
        for name in list(reasons):
            named |= lineage_parents(join(dataset_folder.rstrip("/"), name), published[name])
        more = {version for parent_dataset, version in named
                if parent_dataset == dataset and version in published and version not in reasons}
        if not more:
            break
        for version in sorted(more):
            reasons[version] = ["parent in a kept version's lineage"]
    return Plan(keep={name: reasons[name] for name in order if name in reasons},
                delete=[name for name in order if name not in reasons], finish=finish, leave=leave)


def delete_version(folder: str) -> None:
    """Mark, remove the manifest (the version is no longer published), then remove the rest."""
    fs, path = fsspec.core.url_to_fs(folder)
    path = path.rstrip("/")
    manifest = f"{path}/{manifest_schema.MANIFEST_NAME}"
    if fs.exists(manifest):
        fs.pipe_file(f"{path}/{DELETING_MARKER}", b"sluice datasets gc\n")
        fs.rm(manifest)
    fs.rm(path, recursive=True)


def gc(dataset_folder: str, keep: int, dry_run: bool) -> list[str]:
    """Apply (unless ``dry_run``) the plan; one line per folder saying what was done and why."""
    found = plan(dataset_folder, keep)
    lines = []
    for name in sorted([*found.keep, *found.delete, *found.finish]):
        if name in found.keep:
            lines.append(f"keep    {name}  ({', '.join(found.keep[name])})")
            continue
        if not dry_run:
            try:
                delete_version(join(dataset_folder.rstrip("/"), name))
            except OSError as err:
                raise UsageError(f"{join(dataset_folder.rstrip('/'), name)}: deleting failed ({err});"
                                 " rerun gc to finish") from None
        verb = "would delete" if dry_run else "deleted"
        lines.append(f"{verb:<7} {name}" + ("  (interrupted gc)" if name in found.finish else ""))
    lines += [f"leave   {name}  ({why})" for name, why in sorted(found.leave.items())]
    deleted = len(found.delete) + len(found.finish)
    lines.append(f"gc {dataset_folder}: {len(found.keep)} kept, {deleted} "
                 + ("to delete (dry run: nothing deleted)" if dry_run else "deleted"))
    return lines
