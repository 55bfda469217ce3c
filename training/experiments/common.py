"""What the experiments share: training a stage chain the way ``training.demo`` does, scoring a
checkpoint on a held-out split, counting parameters, and the results/report files.

Every experiment's ``run(out_dir, **settings)`` returns the interface dict (``report``) and writes
it as ``OUT_DIR/report.json`` beside its ``results.json``, so ``training.experiments.page`` can
rebuild the page from the folders alone.
"""

from __future__ import annotations

import json
import os
import shutil

from schemas import dataset_version as dv
from training import train
from training.cli import UsageError, run_main
from training.eval import metrics as metrics_lib

CORPUS_STAGES = ("nl", "multi", "mono")
REPORT = "report.json"
RESULTS = "results.json"
NEAR_CHANCE = ("The models here are as small and as briefly trained as the run's config says; with the tiny CPU"
               " config their scores are near chance (rank classification picks an option with little"
               " regard to the input), so the numbers show the experiment wired end to end, not a finding;"
               " the same code runs at scale (bench/gpu_experiments.sh).")


def fresh_dir(path: str) -> str:
    """``path`` emptied and created: an experiment's folder is replaced by each run, as the demo's is."""
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def train_stage(stage: str, data: str, output: str, config: str, *, init=None, steps=None, device: str = "auto",
                tokenizer=None, compile_mode: str = "auto") -> str:
    """One ``training.train`` stage into ``output`` (its argv, as ``training.demo`` builds it); the
    checkpoint. ``compile_mode`` is train's ``--compile`` (auto: compiled on CUDA)."""
    argv = ["--stage", stage, "--data", data, "--output", output, "--config", config, "--device", device,
            "--compile", compile_mode]
    if steps is not None:
        argv += ["--max_steps", str(steps)]
    if init:
        argv += ["--init", init]
    elif tokenizer:
        argv += ["--tokenizer", tokenizer]
    train.main(argv)
    return output


def train_chain(data: dict, output: str, config: str, *, steps=None, device: str = "auto", tokenizer=None,
                compile_mode: str = "auto") -> dict:
    """nl -> multi -> mono on ``data[stage]`` with one config: ``{stage: checkpoint}`` under ``output``."""
    checkpoints, parent = {}, None
    for stage in CORPUS_STAGES:
        parent = train_stage(stage, data[stage], os.path.join(output, stage), config, init=parent, steps=steps,
                             device=device, tokenizer=tokenizer, compile_mode=compile_mode)
        checkpoints[stage] = parent
    return checkpoints


def corpus_data(root: str, version: str) -> dict:
    """``{stage: ROOT/stage/VERSION}`` for the corpus stages, each checked to be a dataset version."""
    data = {stage: os.path.join(root, stage, version) for stage in CORPUS_STAGES}
    for stage, path in data.items():
        try:
            dv.read_stream_manifest(path)
        except dv.DatasetError as err:
            raise UsageError(f"{stage} data: {err}; make the demo data first (make demo)") from None
    return data


def heldout_mean(results: dict) -> float:
    """One number for a flan.evaluate result: the mean over held-out clusters of their scores
    (each cluster's score is the mean of its tasks' template means), clusters weighted equally."""
    clusters = results["clusters"]
    return sum(clusters.values()) / len(clusters)


def parameters(checkpoint: str) -> int:
    """Number of parameters of the model in ``checkpoint``, counted from the model itself."""
    from training import model as model_lib

    model = model_lib.load(checkpoint)
    return sum(p.numel() for p in model.parameters())


def write_json(path: str, value) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return path


def report(out_dir: str, *, name: str, title: str, summary: str, tables: list, figures: list, results: str) -> dict:
    """The interface dict every experiment's run() returns, also written to ``OUT_DIR/report.json``."""
    out = {"name": name, "title": title, "summary": summary, "tables": tables, "figures": figures,
           "results": results}
    write_json(os.path.join(out_dir, REPORT), out)
    return out


def figure(caption: str, paths: dict) -> dict:
    return {"caption": caption, "png": paths["png"], "svg": paths["svg"]}


def rounded(value, digits: int = 4):
    """A table cell: floats rounded for reading (results.json keeps them whole)."""
    return round(value, digits) if isinstance(value, float) else value


def add_evaluation_flags(parser, compile_help: str = "training.train's --compile.") -> None:
    """--limit, --device, --batch_size and --compile: how every FLAN experiment trains and scores."""
    parser.add_argument("--limit", type=int, help="Score the first N examples of each held-out task.")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"), help=compile_help)


def print_and_return(out: dict) -> dict:
    """An experiment's CLI ends so: its report as JSON on the last line."""
    print(json.dumps(out, sort_keys=True))
    return out


def run_cli(main, argv=None) -> int:
    """``main(argv)`` through training.cli's one-line errors, a bad metric or dataset included."""
    return run_main(main, argv, errors=(metrics_lib.MetricError, dv.DatasetError))
