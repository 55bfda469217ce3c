"""Instruction tuning vs none (FLAN's headline question): the same zero-shot evaluation on a split's
held-out clusters of the parent (pre-instruct) checkpoint and of the instruction-tuned one.

    python -m training.experiments.instruction_tuning --parent CKPT --data ROOT/instruct/V/holdout-<c> \\
        --output DIR [--tuned CKPT | --config FILE --steps N] [--limit N] [--device auto] [--batch_size B]

Without ``--tuned`` the parent is instruction-tuned here on ``--data`` (``training.train --stage
instruct``, the config's settings, ``--steps`` overriding its max_steps), so the tuned model never saw
the held-out clusters. Both are scored by ``training.eval.flan.evaluate`` with the same ``--limit``.
Writes ``DIR/results.json`` (both full results), ``DIR/scores.{png,svg}`` and ``DIR/report.json``;
the folder is replaced. The last line printed is the report (the experiments' shared interface).
"""

from __future__ import annotations

import os
import sys

from training import model as model_lib
from training.cli import ArgumentParser, UsageError
from training.eval import flan
from training.experiments import common, plotting

NAME = "instruction_tuning"
MODELS = ("parent", "tuned")


def run(out_dir: str, *, parent: str, data: str, tuned=None, config=None, steps=None, limit=None,
        device: str = "auto", batch_size: int = 16, compile_mode: str = "auto") -> dict:
    common.fresh_dir(out_dir)
    if tuned is None:
        config = config or os.path.join(model_lib.CONFIG_DIR, "instruct.json")
        tuned = common.train_stage("instruct", data, os.path.join(out_dir, "tuned"), config, init=parent,
                                   steps=steps, device=device, compile_mode=compile_mode)
    evaluated = {name: flan.evaluate(path, data, limit=limit, device=device, batch_size=batch_size)
                 for name, path in (("parent", parent), ("tuned", tuned))}
    if set(evaluated["parent"]["tasks"]) != set(evaluated["tuned"]["tasks"]):
        raise UsageError("the parent and the tuned checkpoint were scored on different tasks")
    rows = table_rows(evaluated)
    means = {name: common.heldout_mean(r) for name, r in evaluated.items()}
    results = common.write_json(os.path.join(out_dir, common.RESULTS), {
        "data": data, "limit": limit, "parent": evaluated["parent"], "tuned": evaluated["tuned"],
        "heldout_mean": means})
    paths = plot(evaluated, os.path.join(out_dir, "scores"))
    version = evaluated["tuned"]["data"]["version"]
    summary = (f"Zero-shot scores on the held-out clusters of {version} ({', '.join(evaluated['tuned']['clusters'])};"
               f" {sum(t['examples'] for t in evaluated['tuned']['tasks'].values())} examples, each under every"
               f" forward template of its task{'' if limit is None else f', first {limit} per task'}) of the parent"
               f" checkpoint and of the same checkpoint instruction-tuned on the split's training mixture: mean over"
               f" held-out clusters {means['parent']:.3f} untuned, {means['tuned']:.3f} tuned. " + common.NEAR_CHANCE)
    return common.report(
        out_dir, name=NAME, title="Instruction tuning vs none (held-out clusters)", summary=summary,
        tables=[{"caption": "Held-out tasks: the score of each template averaged (mean) and the best template,"
                            " per cluster the mean of its tasks' means, and the mean over clusters.",
                 "columns": ["task", "cluster", "metric", "parent mean", "parent best", "tuned mean", "tuned best"],
                 "rows": rows}],
        figures=[common.figure("Held-out score (mean over templates) per task and cluster, parent vs tuned.", paths)],
        results=results)


def table_rows(evaluated: dict) -> list:
    parent, tuned = evaluated["parent"], evaluated["tuned"]
    rows = []
    for task, entry in sorted(tuned["tasks"].items()):
        rows.append([task, entry["cluster"], entry["metric"]] + [
            common.rounded(evaluated[m]["tasks"][task][k]) for m in MODELS for k in ("mean", "best")])
    for cluster in sorted(tuned["clusters"]):
        rows.append([f"cluster {cluster}", cluster, "", common.rounded(parent["clusters"][cluster]), "",
                     common.rounded(tuned["clusters"][cluster]), ""])
    rows.append(["mean over clusters", "", "", common.rounded(common.heldout_mean(parent)), "",
                 common.rounded(common.heldout_mean(tuned)), ""])
    return rows


def plot(evaluated: dict, stem: str) -> dict:
    """Grouped bars: each held-out task's mean, each cluster's score and their mean, parent and tuned."""
    import numpy as np

    tuned = evaluated["tuned"]
    labels = sorted(tuned["tasks"]) + [f"[{c}]" for c in sorted(tuned["clusters"])] + ["[mean]"]
    values = {}
    for name in MODELS:
        r = evaluated[name]
        values[name] = ([r["tasks"][t]["mean"] for t in sorted(tuned["tasks"])]
                        + [r["clusters"][c] for c in sorted(tuned["clusters"])] + [common.heldout_mean(r)])
    fig, ax = plotting.new_figure(width=max(6.4, 0.9 * len(labels) + 2))
    x = np.arange(len(labels))
    for offset, name in ((-0.2, "parent"), (0.2, "tuned")):
        ax.bar(x + offset, values[name], width=0.4, label="untuned parent" if name == "parent" else "instruction-tuned")
    ax.set_xticks(x, labels, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out score (mean over templates)")
    ax.set_title("Zero-shot on held-out clusters")
    ax.legend()
    return plotting.save(fig, stem)


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m training.experiments.instruction_tuning",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", required=True, help="The pre-instruct checkpoint (e.g. the mono stage's).")
    parser.add_argument("--data", required=True, help="Instruct split folder with an eval set (holdout-<cluster>).")
    parser.add_argument("--output", required=True, help="Folder to write (replaced).")
    parser.add_argument("--tuned", help="The instruction-tuned checkpoint; default: tune --parent on --data here.")
    parser.add_argument("--config", help="Config of the instruct stage (default training/configs/instruct.json).")
    parser.add_argument("--steps", type=int, help="Instruct steps (default: the config's max_steps).")
    common.add_evaluation_flags(parser)
    args = parser.parse_args(argv)
    if args.tuned and (args.config or args.steps):
        raise UsageError("--config/--steps train the tuned model; not with --tuned")
    out = run(args.output, parent=args.parent, data=args.data, tuned=args.tuned, config=args.config,
              steps=args.steps, limit=args.limit, device=args.device, batch_size=args.batch_size,
              compile_mode=args.compile)
    return common.print_and_return(out)


def run_cli(argv=None) -> int:
    return common.run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run_cli())
