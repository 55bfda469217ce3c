"""Inspect published dataset versions: ``sluice datasets list|show|diff|verify``.

    sluice datasets list ROOT              every ROOT/DATASET/VERSION, and unfinished runs
    sluice datasets show ROOT/DATASET/VERSION
    sluice datasets diff V1 V2             config changes, counts per stage and reason, sets, languages, totals
    sluice datasets verify ROOT/DATASET/VERSION [--jobs N]   every listed file's size and sha256 (and shards' record counts)
    sluice datasets tag ROOT/DATASET/VERSION ALIAS   point ROOT/DATASET/@ALIAS at the version
    sluice datasets resolve PATH           ROOT/DATASET/@ALIAS[/rest] -> ROOT/DATASET/VERSION[/rest]
    sluice datasets gc ROOT/DATASET --keep N [--dry_run]   delete the oldest versions beyond N

A version of instruct's ``--all_holdouts`` holds one complete split per subfolder, each with its own
manifest, indexed by the version's manifest (``splits``): list and diff read the index, verify
checks each split's manifest sha256 and then its shards, and show and verify also take a split's
folder. Every command taking a version also takes an alias, ``ROOT/DATASET/@ALIAS`` (and
``@ALIAS/SPLIT``): pipelines/aliases.py writes them, pipelines/retention.py is gc. Any fsspec URL works (local paths, ``gs://`` with gcsfs). ``verify`` exits 1 naming each shard that
does not match, so a scheduler can gate training on it; a bad argument exits 2 with one line.

An invalid manifest (not JSON, wrong keys or types, a path leaving its folder: schemas/dataset_version.py)
is one line too: ``show``, ``diff`` and ``verify`` exit 2 with ``error: VERSION: invalid manifest (...)``,
and ``list`` keeps listing, the version a row of status ``invalid manifest`` (``show`` says why).
"""

from __future__ import annotations

import json
import sys

import fsspec

from pipelines import aliases, claims, retention, summary, versions
from pipelines.driver import ArgumentParser, UsageError, positive_int, run_main
from schemas import dataset_version
from schemas import manifest as manifest_schema
from schemas.files import join

USAGE = __doc__.split("\n\n")[1]


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for a URL, or a UsageError naming what is missing."""
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise UsageError(f"{url}: no filesystem for it ({err})") from None


def _checked(read, version: str, *args):
    """``read(version, *args)`` (schemas.dataset_version), its DatasetError a UsageError."""
    filesystem(version)  # a URL with no filesystem installed is named as such
    try:
        return read(version, *args)
    except dataset_version.DatasetError as err:
        raise UsageError(str(err)) from None


def resolved(path: str) -> str:
    """``path`` with its alias resolved (schemas.dataset_version.resolve), or a UsageError."""
    return _checked(dataset_version.resolve, path)


def load_manifest(version: str) -> dict:
    """The validated manifest of a published version, or a UsageError."""
    return _checked(dataset_version.read_manifest, version)


def presented(version: str, present, *args):
    """``present(*args)`` (schemas.dataset_version.presented), its DatasetError a UsageError."""
    try:
        return dataset_version.presented(version, present, *args)
    except dataset_version.DatasetError as err:
        raise UsageError(str(err)) from None


def list_versions(root: str) -> list[dict]:
    """Published versions under ROOT (``ROOT/DATASET/VERSION/manifest.json``) and unfinished runs."""
    fs, path = filesystem(root)
    base = path.rstrip("/")
    if not fs.isdir(base):
        raise UsageError(f"{root}: no such folder")
    rows = []
    for manifest_path in sorted(fs.glob(f"{base}/*/*/{manifest_schema.MANIFEST_NAME}")):
        dataset_folder, version = manifest_path.rsplit("/", 3)[-3:-1]
        folder = join(root, f"{dataset_folder}/{version}")
        try:
            manifest = dataset_version.read_manifest(folder)
        except dataset_version.DatasetError:  # listed all the same; show names what is wrong
            rows.append({"dataset": dataset_folder, "version": version, "kind": None, "status": "invalid manifest"})
            continue
        totals = split_totals(manifest) if manifest.get("splits") else manifest.get("totals", {})
        rows.append({"dataset": dataset_folder, "version": version, "kind": manifest.get("dataset"),
                     "status": "published", "finished": manifest.get("created", {}).get("finished"),
                     "shards": totals.get("shards"), "records": totals.get("records"),
                     "tokens": totals.get("tokens"), "config": manifest.get("config_fingerprint", "")[:12],
                     "tokenizer": tokenizer_version(manifest)})
    published = {(r["dataset"], r["version"]) for r in rows}  # a manifest, valid or not
    rows += alias_rows(fs, root, base, rows)
    for folder in sorted(fs.glob(f"{base}/*/{versions.STAGING_DIR}/*")):
        dataset_folder, _, version = folder.rsplit("/", 3)[-3:]
        rows.append({"dataset": dataset_folder, "version": version, "kind": None,
                     "status": claims.staging_status(fs, folder)})
    for marker in sorted(fs.glob(f"{base}/*/*/{versions.PUBLISHING_MARKER}")):
        dataset_folder, version = marker.rsplit("/", 3)[-3:-1]
        if (dataset_folder, version) not in published:
            rows.append({"dataset": dataset_folder, "version": version, "kind": None,
                         "status": "interrupted publish"})
    for marker in sorted(fs.glob(f"{base}/*/*/{retention.DELETING_MARKER}")):
        dataset_folder, version = marker.rsplit("/", 3)[-3:-1]
        if (dataset_folder, version) not in published:
            rows.append({"dataset": dataset_folder, "version": version, "kind": None,
                         "status": "interrupted gc"})
    return sorted(rows, key=lambda r: (r["dataset"], r["version"], r["status"]))


def tokenizer_version(manifest: dict) -> str | None:
    """The tokenizer version a corpus was tokenized with: its lineage's tokenizer parent (the
    version's name), else the first 12 hex digits of the model's sha256 (a model from no version);
    None for a tokenizer version itself."""
    if manifest.get("dataset") == "tokenizer":
        return None
    parent = manifest["lineage"]["parents"].get("tokenizer") or {}
    if parent.get("version"):
        return str(parent["version"])
    sha256 = manifest["lineage"].get("tokenizer_sha256") or manifest["tokenizer"].get("sha256")
    return f"sha256:{sha256[:12]}" if isinstance(sha256, str) else None


def alias_rows(fs, root: str, base: str, rows: list) -> list:
    """Each alias's name put on its version's row (``aliases``); an alias file that cannot be read,
    or names no published version, a row of its own."""
    by_version = {(r["dataset"], r["version"]): r for r in rows}
    extra = []
    for path in sorted(fs.glob(f"{base}/*/{dataset_version.ALIAS_PREFIX}*")):
        dataset_folder, file_name = path.rsplit("/", 2)[-2:]
        name = file_name[len(dataset_version.ALIAS_PREFIX):]
        if not dataset_version.ALIAS_NAME.fullmatch(name):
            continue
        try:
            version = dataset_version.read_alias(join(root, dataset_folder), name)["version"]
        except dataset_version.DatasetError:
            extra.append({"dataset": dataset_folder, "version": file_name, "kind": None, "status": "invalid alias"})
            continue
        row = by_version.get((dataset_folder, version))
        if row is None:
            extra.append({"dataset": dataset_folder, "version": file_name, "kind": None,
                          "status": f"alias of missing {version}"[:26]})
        else:
            row.setdefault("aliases", []).append(file_name)
    return extra


def split_totals(manifest: dict) -> dict:
    """Totals over the splits of an --all_holdouts version (its own manifest has no shards)."""
    keys = sorted({key for entry in manifest["splits"].values() for key in entry["totals"]})
    return {key: sum(entry["totals"][key] for entry in manifest["splits"].values()) for key in keys}


def format_list(rows: list[dict]) -> str:
    if not rows:
        return "no versions"
    lines = [f"{'DATASET':<14} {'VERSION':<22} {'KIND':<10} {'STATUS':<26} {'SHARDS':>6} {'TOKENS':>14}"
             f"  {'TOKENIZER':<20}  CONFIG        {'FINISHED':<20}  ALIASES"]
    for r in rows:
        tokens = f"{r['tokens']:,}" if r.get("tokens") is not None else "-"
        shards = r.get("shards") if r.get("shards") is not None else "-"
        lines.append(f"{r['dataset']:<14} {r['version']:<22} {r['kind'] or '-':<10} {r['status']:<26}"
                     f" {shards:>6} {tokens:>14}  {r.get('tokenizer') or '-':<20}  {r.get('config') or '-':<12}"
                     f"  {r.get('finished') or '-':<20}  {' '.join(r.get('aliases', [])) or '-'}")
    return "\n".join(lines)


def show(version: str) -> str:
    manifest = load_manifest(version)
    return presented(version, _show, manifest)


def _show(manifest: dict) -> str:
    lineage = manifest["lineage"]
    lines = [f"version {manifest['version']['dataset_folder']}/{manifest['version']['name']}"
             f"  created {manifest['created']['started']} .. {manifest['created']['finished']}",
             summary.summarize(manifest),
             f"  inputs fingerprint {lineage['inputs_fingerprint'][:16]}"
             f"  tokenizer sha256 {(lineage.get('tokenizer_sha256') or '-')[:16]}"]
    if manifest["version"].get("split"):
        lines[0] += f"  split {manifest['version']['split']}"
    for role, parent in lineage["parents"].items():
        lines.append(f"  parent {role}: {parent['path']} (dataset {parent['dataset']}, version"
                     f" {parent['version']}, manifest sha256 {parent['manifest_sha256'][:16]})")
    return "\n".join(lines)


def flatten(value, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _changes(a: dict, b: dict) -> list[tuple]:
    return [(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def _group_counts(manifest: dict) -> dict:
    """Per-source (NL sets) and per-language (Multi) kept documents and tokens/bytes, flattened."""
    out = {}
    for name, entry in manifest.get("sets", {}).items():
        out[f"set {name}: documents kept"] = entry["kept"]["documents"]
        out[f"set {name}: bytes kept"] = entry["kept"]["bytes"]
    for name, entry in manifest.get("languages", {}).items():
        out[f"language {name}: documents kept"] = entry["kept"]["documents"]
        out[f"language {name}: tokens kept"] = entry["kept"]["tokens"]
    for name, entry in manifest.get("mixture", {}).get("tasks", {}).items():
        out[f"task {name}: examples"] = entry["realised"]
    for split, entry in manifest.get("splits", {}).items():
        out[f"split {split}: sequences"] = entry["totals"]["records"]
        out[f"split {split}: tokens"] = entry["totals"]["tokens"]
        out[f"split {split}: eval examples"] = entry["eval_examples"]
        for name, n in entry["mixture"].items():
            out[f"split {split} task {name}: examples"] = n
    return out


def diff(first: str, second: str) -> dict:
    """What changed between two versions: config, counts per stage/reason, sets, languages, totals."""
    a, b = load_manifest(first), load_manifest(second)
    return presented(f"{first} or {second}", _diff, a, b)


def _diff(a: dict, b: dict) -> dict:
    counts = lambda m: {f"{stage}/{reason}": n for stage, v in m["counts"].items()  # noqa: E731
                        for reason, n in v.items()}
    return {
        "datasets": (a["dataset"], b["dataset"]),
        "config": _changes(flatten(a["config"]), flatten(b["config"])),
        "counts": _changes(counts(a), counts(b)),
        "groups": _changes(_group_counts(a), _group_counts(b)),
        "totals": _changes(a["totals"], b["totals"]),
        "tokenizer": _changes({"sha256": a["tokenizer"].get("sha256")}, {"sha256": b["tokenizer"].get("sha256")}),
    }


def format_diff(result: dict, first: str, second: str) -> str:
    lines = [f"--- {first} ({result['datasets'][0]})", f"+++ {second} ({result['datasets'][1]})"]
    titles = {"config": "config", "tokenizer": "tokenizer", "counts": "counts (stage/reason)",
              "groups": "sources, languages, tasks and splits", "totals": "totals"}
    for section, title in titles.items():
        changes = result[section]
        if not changes:
            lines.append(f"{title}: no change")
            continue
        lines.append(f"{title}:")
        for key, old, new in changes:
            delta = ""
            if isinstance(old, int) and isinstance(new, int) and not isinstance(old, bool):
                delta = f"  ({new - old:+,})"
            show_value = lambda v: "-" if v is None else json.dumps(v)  # noqa: E731
            lines.append(f"  {key}: {show_value(old)} -> {show_value(new)}{delta}")
    return "\n".join(lines)


def verify(version: str, jobs: int = 1) -> list[str]:
    """One line per problem (schemas.dataset_version.verify_version), or a UsageError."""
    return _checked(dataset_version.verify_version, version, load_manifest(version), jobs)


def shard_count(version: str, manifest: dict) -> tuple[int, int]:
    """(shard files, records) of a version, its splits' included (a split that cannot be read,
    which verify names, counts none)."""
    files = sum(len(s["files"]) for s in manifest["shards"])
    records = manifest["totals"]["records"]
    for entry in manifest.get("splits", {}).values():
        try:
            folder = dataset_version.member_path(version, entry["path"])
            more = shard_count(folder, dataset_version.read_manifest(folder))
        except (dataset_version.DatasetError, *dataset_version.MISSING):
            continue
        files, records = files + more[0], records + more[1]
    return files, records


def command_parser(command: str) -> ArgumentParser:
    """The arguments of one ``sluice datasets`` command."""
    parser = ArgumentParser(prog=f"sluice datasets {command}")
    positional = {"list": ["ROOT"], "show": ["VERSION"], "diff": ["VERSION1", "VERSION2"], "verify": ["VERSION"],
                  "tag": ["VERSION", "ALIAS"], "resolve": ["PATH"], "gc": ["DATASET_FOLDER"]}[command]
    for name in positional:
        parser.add_argument(name)
    if command == "verify":
        parser.add_argument("--jobs", type=positive_int, default=1, help="Files verified at once (threads).")
    if command == "gc":
        parser.add_argument("--keep", type=positive_int, required=True,
                            help="Published versions to keep besides those an alias or a lineage protects.")
        parser.add_argument("--dry_run", action="store_true", help="Say what would be deleted; delete nothing.")
    return parser


COMMANDS = ("list", "show", "diff", "verify", "tag", "resolve", "gc")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        raise UsageError("usage: " + " | ".join(
            line.strip().split("  ")[0] for line in USAGE.splitlines() if line.strip()))
    command = argv[0]
    args = command_parser(command).parse_args(argv[1:])
    if command == "list":
        print(format_list(list_versions(args.ROOT)))
    elif command == "show":
        print(show(resolved(args.VERSION)))
    elif command == "diff":
        first, second = resolved(args.VERSION1), resolved(args.VERSION2)
        print(format_diff(diff(first, second), first, second))
    elif command == "tag":
        print(aliases.format_tag(*aliases.tag(args.VERSION, args.ALIAS)))
    elif command == "resolve":
        print(resolved(args.PATH))
    elif command == "gc":
        print("\n".join(retention.gc(args.DATASET_FOLDER, args.keep, args.dry_run)))
    else:
        return verify_command(resolved(args.VERSION), args.jobs)
    return 0


def verify_command(version: str, jobs: int) -> int:
    """Print ``FAIL`` lines and a summary; 1 when a file does not match."""
    problems = verify(version, jobs)
    files, records = shard_count(version, load_manifest(version))
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"verify: {version}: {len(problems)} problem(s) in {files} shard files", file=sys.stderr)
        return 1
    print(f"verify: {version}: {files} shard files, {records:,} records: OK")
    return 0


def run(argv=None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    raise SystemExit(run())
