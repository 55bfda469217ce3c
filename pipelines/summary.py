"""Print a short summary of a published dataset's manifest: ``python -m pipelines.summary DIR``."""

from __future__ import annotations

import sys

from schemas import dataset_version
from schemas import manifest as manifest_schema
from schemas.files import join


def built_by(manifest: dict, commit_digits: int) -> str:
    """``VERSION (COMMIT)`` of the Sluice that wrote a manifest (``-`` for what it did not record)."""
    sluice = manifest["sluice"]
    return f"{sluice.get('version', '-')} ({(sluice.get('git_commit') or '-')[:commit_digits]})"


def summarize(manifest: dict) -> str:
    totals = manifest["totals"]
    lines = [
        f"dataset {manifest['dataset']}  config {manifest['config_fingerprint'][:12]}  "
        f"sluice {built_by(manifest, 10)}",
    ]
    splits = manifest.get("splits")
    if splits:  # an --all_holdouts version: the shards are in the split folders
        lines.append(f"  {len(splits)} splits, each a dataset in its folder with its own manifest:")
        width = max(len(name) for name in splits)
        for name, entry in splits.items():
            t = entry["totals"]
            lines.append(f"    split {name:<{width}}  {t['shards']} shards, {t['records']:,} sequences,"
                         f" {t['tokens']:,} tokens, {t['documents']:,} examples; eval {entry['eval_examples']:,}")
    else:
        lines += [
            f"  {totals['shards']} shards, {totals['records']:,} sequences, {totals['tokens']:,} tokens, "
            f"{totals['documents']:,} documents, {totals['bytes']:,} bytes",
            f"  tail tokens {totals['tail_tokens']:,} (dropped {totals['dropped_tail_tokens']:,}), "
            f"padding {totals['padding_tokens']:,}",
        ]
    near = manifest.get("near_dedup")
    if near:
        cc = near["connected_components"]
        lines.append(
            f"  near-dedup: LSH {near['bands']} bands x {near['rows']} rows, {near['components']:,}"
            f" clusters, {near['removed']:,} removed, components converged after round"
            f" {cc['first_idle_round']} of {cc['rounds']}"
        )
    files = manifest["inputs"].get("totals") if isinstance(manifest["inputs"], dict) else None
    if files and "damaged" in files:
        damaged = ", ".join(files["damaged"]) or "none"
        lines.append(f"  inputs: {files['files']:,} files, {files['bytes']:,} bytes, {files['lines']:,} lines;"
                     f" damaged: {damaged}")
    for name, entry in manifest.get("sets", {}).items():
        lines.append(
            f"  set {name:<18} read {entry['read']['documents']:,} ({entry['read']['bytes']:,} bytes),"
            f" kept {entry['kept']['documents']:,} ({entry['kept']['bytes']:,} bytes)"
        )
    for name, entry in manifest.get("languages", {}).items():
        lines.append(
            f"  language {name:<11} read {entry['read']['documents']:,}, kept {entry['kept']['documents']:,}"
            f" ({entry['kept']['bytes']:,} bytes, {entry['kept']['tokens']:,} tokens),"
            f" rejected {entry['rejected']['documents']:,}"
        )
    holdout, mixture, held = manifest.get("holdout"), manifest.get("mixture"), manifest.get("eval")
    if mixture:
        lines.append(f"  mixture: {len(mixture['tasks'])} tasks, {mixture['examples']:,} examples"
                     f" (cap {mixture['mixing_cap']:,}, at most {mixture['max_examples_per_task']:,} a task)")
        for name, entry in mixture["tasks"].items():
            lines.append(f"    {name:<28} {entry['cluster']:<24} {entry['realised']:>6,}"
                         f" ({entry['realised_proportion']:.1%}) of {entry['available']:,}")
    if holdout and holdout.get("excluded_clusters"):
        lines.append(f"  held out {', '.join(holdout['excluded_clusters'])}; eval set {held['examples']:,}"
                     f" examples of {', '.join(held['tasks'])}")
    ladder = manifest.get("ladder")
    if ladder and "k" in ladder:  # a split of a cluster ladder
        lines.append(f"  cluster ladder k={ladder['k']} of {len(ladder['order'])}: trains on"
                     f" {', '.join(ladder['train_clusters'])}")
    elif ladder:  # the ladder's index
        lines.append(f"  cluster ladder holding out {', '.join(ladder['excluded_clusters'])}: adds, in order,"
                     f" {', '.join(ladder['order'])}")
    for stage, outcomes in manifest["counts"].items():
        shown = ", ".join(f"{name} {n:,}" for name, n in outcomes.items())
        lines.append(f"  {stage:<12} {shown}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m pipelines.summary DATASET_DIR", file=sys.stderr)
        return 2
    try:
        version = dataset_version.resolve(argv[0])
        manifest = dataset_version.read_manifest(version)
        print(dataset_version.presented(version, summarize, manifest))
    except dataset_version.MISSING:
        print(f"error: no manifest at {join(version, manifest_schema.MANIFEST_NAME)}", file=sys.stderr)
        return 2
    except dataset_version.DatasetError as err:  # one line naming the version and the damage
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def run(argv=None) -> int:
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
