"""Number of instruction-tuning clusters (FLAN's cluster ablation): one base checkpoint tuned on each
split of a cluster ladder and scored on the clusters every split holds out.

    python -m training.experiments.cluster_ladder --ladder ROOT/instruct/V --base CKPT --output DIR \\
        [--config FILE] [--steps N] [--limit N] [--device auto] [--batch_size B]

``--ladder`` is a version built by ``pipelines.instruct --holdout_clusters A,B,C --cluster_ladder``:
an index manifest whose ``splits`` lists ``clusters-<k>/`` folders (k = 1..K, read from the folder
name), split k training on the first k of the other trainable clusters, every split holding out
the same clusters with the same evaluation set (checked here: the eval files' sha256 must agree).
Each split is trained from ``--base`` with the same config, steps and seed (``training.train
--stage instruct``), then scored with ``training.eval.flan.evaluate``; the untuned base, scored on
the same set, is the point k = 0. Writes ``DIR/results.json``, ``DIR/ladder.{png,svg}`` (held-out
score against k, one line per held-out cluster and their mean) and ``DIR/report.json``; the folder is
replaced. The last line printed is the report.
"""

from __future__ import annotations

import os
import re
import sys

from schemas import dataset_version as dv
from training import model as model_lib
from training.cli import ArgumentParser, UsageError
from training.eval import flan
from training.experiments import common, plotting

NAME = "cluster_ladder"
SPLIT = re.compile(r"clusters-([1-9][0-9]*)")


def ladder_splits(ladder: str) -> list:
    """``[(k, split folder, split manifest)]`` by k, from the ladder version's index; one line where
    ``ladder`` is not a ladder or its splits do not share one evaluation set."""
    try:
        index = dv.read_manifest(ladder)
    except dv.DatasetError as err:
        raise UsageError(f"--ladder: {err}") from None
    found = []
    for name, entry in sorted((index.get("splits") or {}).items()):
        match = SPLIT.fullmatch(os.path.basename(str(entry.get("path", name)).rstrip("/")))
        if match:
            try:
                folder = dv.member_path(ladder, entry.get("path", name))
                found.append((int(match.group(1)), folder, dv.read_stream_manifest(folder)))
            except dv.DatasetError as err:
                raise UsageError(f"--ladder: {err}") from None
    if not found:
        raise UsageError(f"--ladder: {ladder} lists no clusters-<k> split; build one with pipelines.instruct"
                         " --holdout_clusters A,B --cluster_ladder")
    found.sort(key=lambda item: item[0])
    eval_sets = {k: [f["sha256"] for f in (m.get("eval") or {}).get("files", [])] for k, _, m in found}
    first = eval_sets[found[0][0]]
    differing = [k for k, files in eval_sets.items() if files != first]
    if not first or differing:
        raise UsageError(f"--ladder: the splits of {ladder} do not share one evaluation set"
                         f" (clusters-{differing[0] if differing else found[0][0]} differs or has none)")
    return found


def train_clusters(manifest: dict) -> list:
    """The clusters a split trains on: its ladder section's, else those of the tasks its mixture realised."""
    ladder = manifest.get("ladder") or {}
    if ladder.get("train_clusters") is not None:
        return list(ladder["train_clusters"])
    tasks = (manifest.get("mixture") or {}).get("tasks", {})
    return sorted({t["cluster"] for t in tasks.values() if t.get("realised")})


def run(out_dir: str, *, ladder: str, base: str, config=None, steps=None, limit=None, device: str = "auto",
        batch_size: int = 16, compile_mode: str = "auto") -> dict:
    splits = ladder_splits(ladder)
    common.fresh_dir(out_dir)
    config = config or os.path.join(model_lib.CONFIG_DIR, "instruct.json")
    # The untuned base (k = 0) on the evaluation set every split shares.
    points = [point(0, None, base, [], flan.evaluate(base, splits[0][1], limit=limit, device=device,
                                                     batch_size=batch_size))]
    for k, folder, manifest in splits:
        checkpoint = common.train_stage("instruct", folder, os.path.join(out_dir, f"clusters-{k}"), config,
                                        init=base, steps=steps, device=device, compile_mode=compile_mode)
        result = flan.evaluate(checkpoint, folder, limit=limit, device=device, batch_size=batch_size)
        points.append(point(k, os.path.basename(folder.rstrip("/")), checkpoint, train_clusters(manifest), result))
    clusters = sorted(points[0]["clusters"])
    results = common.write_json(os.path.join(out_dir, common.RESULTS), {
        "ladder": ladder, "base": base, "config": config, "steps": steps, "limit": limit,
        "heldout_clusters": clusters, "points": points})
    paths = plot(points, clusters, os.path.join(out_dir, "ladder"))
    last = points[-1]
    summary = (f"The base checkpoint instruction-tuned on each of the {len(splits)} splits of the cluster ladder"
               f" {ladder} (split k trains on the first k training clusters, the same steps and seed from the same"
               f" base) and scored zero-shot on the held-out clusters every split shares ({', '.join(clusters)}):"
               f" mean held-out score {points[0]['mean']:.3f} untuned (k = 0), {last['mean']:.3f} at k = {last['k']}. "
               + common.NEAR_CHANCE)
    columns = ["k", "split", "training clusters"] + clusters + ["mean"]
    rows = [[p["k"], p["split"] or "(untuned base)", ", ".join(p["train_clusters"]) or "-"]
            + [common.rounded(p["clusters"][c]) for c in clusters] + [common.rounded(p["mean"])] for p in points]
    return common.report(
        out_dir, name=NAME, title="Number of instruction-tuning clusters (held-out score)", summary=summary,
        tables=[{"caption": "Held-out score per held-out cluster (mean of its tasks' template means) and their"
                            " mean, by the number k of training clusters; k = 0 is the untuned base.",
                 "columns": columns, "rows": rows}],
        figures=[common.figure("Held-out score against the number of instruction-tuning clusters"
                               " (k = 0: untuned base).", paths)],
        results=results)


def point(k: int, split, checkpoint: str, trained_on: list, result: dict) -> dict:
    return {"k": k, "split": split, "checkpoint": checkpoint, "train_clusters": trained_on,
            "clusters": result["clusters"], "mean": common.heldout_mean(result),
            "tasks": {t: {key: v[key] for key in ("metric", "mean", "best", "examples")}
                      for t, v in result["tasks"].items()}}


def plot(points: list, clusters: list, stem: str) -> dict:
    ks = [p["k"] for p in points]
    fig, ax = plotting.new_figure()
    for cluster in clusters:
        ax.plot(ks, [p["clusters"][cluster] for p in points], marker="o", alpha=0.8, label=cluster)
    ax.plot(ks, [p["mean"] for p in points], marker="s", color="black", linewidth=2.5, label="mean")
    ax.set_xticks(ks)
    ax.set_xlabel("number of instruction-tuning clusters (0 = untuned base)")
    ax.set_ylabel("held-out score")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out clusters vs clusters tuned on")
    ax.legend()
    return plotting.save(fig, stem)


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m training.experiments.cluster_ladder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", required=True, help="A --cluster_ladder instruct version (index of clusters-<k>/).")
    parser.add_argument("--base", required=True, help="Checkpoint every split is tuned from (e.g. the mono stage's).")
    parser.add_argument("--output", required=True, help="Folder to write (replaced).")
    parser.add_argument("--config", help="Config of the instruct stage (default training/configs/instruct.json).")
    parser.add_argument("--steps", type=int, help="Instruct steps per split (default: the config's max_steps).")
    common.add_evaluation_flags(parser)
    args = parser.parse_args(argv)
    out = run(args.output, ladder=args.ladder, base=args.base, config=args.config, steps=args.steps,
              limit=args.limit, device=args.device, batch_size=args.batch_size, compile_mode=args.compile)
    return common.print_and_return(out)


def run_cli(argv=None) -> int:
    return common.run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run_cli())
