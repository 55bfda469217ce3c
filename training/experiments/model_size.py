"""Model size (FLAN's model-size figure): several model configs, each trained through the stages
nl -> multi -> mono and then with and without instruction tuning, scored on a split's held-out clusters.

    python -m training.experiments.model_size --configs a.json,b.json --data ROOT --version V \\
        --instruct_split holdout-<cluster> --output DIR [--steps N] [--limit N] [--device auto] [--batch_size B]

Each config (its ``model`` dimensions and ``train`` settings, ``--steps`` overriding max_steps) trains
nl from scratch on ``ROOT/nl/V``, then multi and mono, then instruct on the split
``ROOT/instruct/V/<instruct_split>`` (or ``ROOT/instruct/V`` itself when it is a single split). The
untuned model is the mono checkpoint, the tuned one its instruct stage; both are scored by
``training.eval.flan.evaluate`` with the same ``--limit``. Parameters are counted from the model.
Writes ``DIR/results.json``, ``DIR/model_size.{png,svg}`` (held-out score against parameters, tuned
and untuned) and ``DIR/report.json``; the folder is replaced. The last line printed is the report.
On CPU the configs are tiny (``tiny.json``, ``tiny_wide.json``); the code is the same on a GPU.
"""

from __future__ import annotations

import os
import sys

from schemas import dataset_version as dv
from training import demo
from training import model as model_lib
from training.cli import ArgumentParser, UsageError
from training.eval import flan
from training.experiments import common, plotting

NAME = "model_size"


def config_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def run(out_dir: str, *, configs: list, data: str, version: str, instruct_split=None, steps=None, instruct_steps=None,
        limit=None, device: str = "auto", batch_size: int = 16, tokenizer=None, compile_mode: str = "auto",
        trained=None) -> dict:
    """``trained`` ({config path: {stage: checkpoint}}) names chains already trained with that config and
    ``steps`` on the same data (the driver's base chain), which are used instead of training them again."""
    if not configs:
        raise UsageError("--configs: name at least one config")
    names = [config_name(c) for c in configs]
    if len(set(names)) != len(names):
        raise UsageError(f"--configs: two configs share a name ({', '.join(names)}); each names its folder")
    for path in configs:
        if not os.path.isfile(path):
            raise UsageError(f"--configs: no file {path}")
    corpus = common.corpus_data(data, version)
    split = demo.instruct_data(os.path.join(data, "instruct", version), instruct_split)
    common.fresh_dir(out_dir)
    reuse = {os.path.abspath(path): chain for path, chain in (trained or {}).items()}
    models = []
    for name, config in zip(names, configs):
        chain = reuse.get(os.path.abspath(config)) or common.train_chain(
            corpus, os.path.join(out_dir, name), config, steps=steps, device=device, tokenizer=tokenizer,
            compile_mode=compile_mode)
        tuned = common.train_stage("instruct", split, os.path.join(out_dir, name, "instruct"), config,
                                   init=chain["mono"], steps=instruct_steps or steps, device=device,
                                   compile_mode=compile_mode)
        scored = {label: flan.evaluate(path, split, limit=limit, device=device, batch_size=batch_size)
                  for label, path in (("untuned", chain["mono"]), ("tuned", tuned))}
        dims = model_lib.read_config_file(config)["model"]
        models.append({"config": config, "name": name, "parameters": common.parameters(tuned),
                       "dimensions": {k: dims[k] for k in ("n_layer", "n_head", "n_embd") if k in dims},
                       "checkpoints": {"untuned": chain["mono"], "tuned": tuned},
                       **{label: {"clusters": r["clusters"], "mean": common.heldout_mean(r),
                                  "tasks": {t: {k: v[k] for k in ("metric", "mean", "best", "examples")}
                                            for t, v in r["tasks"].items()}}
                          for label, r in scored.items()}})
    models.sort(key=lambda m: m["parameters"])
    version_label = dv.version_label(dv.read_manifest(split))
    results = common.write_json(os.path.join(out_dir, common.RESULTS), {
        "data": data, "version": version, "split": split, "steps": steps, "instruct_steps": instruct_steps,
        "limit": limit, "models": models})
    paths = plot(models, os.path.join(out_dir, "model_size"))
    clusters = sorted(models[0]["tuned"]["clusters"])
    sizes = ", ".join(f"{m['name']} {m['parameters']:,} parameters" for m in models)
    summary = (f"{len(models)} model configs ({sizes}) each trained nl -> multi -> mono"
               f"{'' if steps is None else f' ({steps} steps a stage)'}, then scored"
               f" zero-shot on the held-out clusters of {version_label} ({', '.join(clusters)}) untuned and after"
               " instruction tuning on the split's training mixture. " + common.NEAR_CHANCE)
    rows = [[m["name"], m["dimensions"].get("n_layer"), m["dimensions"].get("n_embd"), m["parameters"],
             common.rounded(m["untuned"]["mean"]), common.rounded(m["tuned"]["mean"])] for m in models]
    return common.report(
        out_dir, name=NAME, title="Model size: held-out score, tuned and untuned", summary=summary,
        tables=[{"caption": "Mean held-out score over clusters by model size, without and with instruction tuning.",
                 "columns": ["config", "layers", "width", "parameters", "untuned", "tuned"], "rows": rows}],
        figures=[common.figure("Held-out score against parameters, instruction-tuned and untuned.", paths)],
        results=results)


def plot(models: list, stem: str) -> dict:
    fig, ax = plotting.new_figure()
    params = [m["parameters"] for m in models]
    ax.plot(params, [m["untuned"]["mean"] for m in models], marker="o", label="untuned (mono stage)")
    ax.plot(params, [m["tuned"]["mean"] for m in models], marker="s", label="instruction-tuned")
    if len(set(params)) > 1:
        ax.set_xscale("log")
    for m in models:
        ax.annotate(m["name"], (m["parameters"], m["tuned"]["mean"]), textcoords="offset points", xytext=(4, 6),
                    fontsize=8)
    ax.set_xlabel("parameters")
    ax.set_ylabel("held-out score (mean over clusters)")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out score vs model size")
    ax.legend()
    return plotting.save(fig, stem)


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m training.experiments.model_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", required=True, help="Comma-separated config files, one model each.")
    parser.add_argument("--data", required=True, help="Root with nl/, multi/, mono/ and instruct/ versions.")
    parser.add_argument("--version", required=True, help="The version of every dataset (e.g. v1).")
    parser.add_argument("--instruct_split", help="Split folder of an index instruct version (e.g. holdout-sentiment).")
    parser.add_argument("--output", required=True, help="Folder to write (replaced).")
    parser.add_argument("--steps", type=int, help="Steps per stage (default: each config's max_steps).")
    parser.add_argument("--instruct_steps", type=int, help="Steps of the instruct stage (default: --steps).")
    parser.add_argument("--tokenizer", help="tokenizer.model, if the manifests' path does not resolve here.")
    common.add_evaluation_flags(parser)
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    out = run(args.output, configs=configs, data=args.data, version=args.version, instruct_split=args.instruct_split,
              steps=args.steps, instruct_steps=args.instruct_steps, limit=args.limit, device=args.device,
              batch_size=args.batch_size, tokenizer=args.tokenizer, compile_mode=args.compile)
    return common.print_and_return(out)


def run_cli(argv=None) -> int:
    return common.run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run_cli())
