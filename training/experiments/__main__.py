"""Every experiment on one data root, and the page showing them (``make experiments``).

    python -m training.experiments --data out/demo --version v1 --ladder out/demo/instruct/ladder-v1 \\
        --output out/demo/experiments [--config training/configs/tiny.json] \\
        [--configs training/configs/tiny.json,training/configs/tiny_wide.json] [--steps 8] \\
        [--instruct_steps N] [--limit 8] [--compile auto|on|off] \\
        [--holdout_split holdout-sentiment] [--device auto] [--only NAME,...]

First the base chain nl -> multi -> mono is trained once with ``--config`` (``OUT/base/``); then each
experiment of ``EXPERIMENTS`` runs into ``OUT/<name>/`` with its settings drawn from that context
(the base checkpoint, the held-out split, the ladder, the configs...), what its training stages
print going to ``OUT/<name>.log``; then ``OUT/index.html`` shows them all. Prints one line per experiment (its
seconds and summary) and, last, a JSON line with the page and each experiment's results and figures.
Adding an experiment is one line in ``EXPERIMENTS``: its name, module and settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import shutil
import sys
import time

from schemas import dataset_version as dv
from training import demo
from training import model as model_lib
from training.cli import ArgumentParser, UsageError
from training.eval import sandbox
from training.experiments import common, page


@dataclasses.dataclass(frozen=True)
class Context:
    """What the experiments draw their settings from."""

    data: str  # root with nl/, multi/, mono/, instruct/ versions
    version: str
    split: str  # the held-out split folder (ROOT/instruct/V/holdout-<cluster>)
    ladder: str  # a --cluster_ladder instruct version
    base: dict  # {stage: checkpoint} of the base chain (nl, multi, mono)
    config: str
    configs: tuple
    steps: object  # int or None: the configs' max_steps
    instruct_steps: object  # int or None: steps
    limit: object
    device: str
    batch_size: int
    tokenizer: object
    compile_mode: str


def common_eval(c: Context) -> dict:
    return {"limit": c.limit, "device": c.device, "batch_size": c.batch_size, "compile_mode": c.compile_mode}


# (name, module with run(out_dir, **settings), settings from the context). One line per experiment.
EXPERIMENTS = (
    ("instruction_tuning", "training.experiments.instruction_tuning",
     lambda c: dict(parent=c.base["mono"], data=c.split, config=c.config, steps=c.instruct_steps,
                    **common_eval(c))),
    ("cluster_ladder", "training.experiments.cluster_ladder",
     lambda c: dict(ladder=c.ladder, base=c.base["mono"], config=c.config, steps=c.instruct_steps,
                    **common_eval(c))),
    ("model_size", "training.experiments.model_size",
     lambda c: dict(configs=list(c.configs), data=c.data, version=c.version, instruct_split=os.path.basename(c.split),
                    steps=c.steps, instruct_steps=c.instruct_steps, tokenizer=c.tokenizer,
                    trained={c.config: c.base}, **common_eval(c))),
    # CodeGen's figures on the code model (Mono, the last stage of the base chain); a few problems and
    # samples, as training.demo; without bwrap only this tiny model's own completions run unsandboxed.
    ("codegen", "training.experiments.codegen",
     lambda c: dict(checkpoint=c.base["mono"], problems=None if c.limit is None else min(c.limit, 2), samples=2,
                    max_new_tokens=32, device=c.device, unsafe_no_sandbox=sandbox.problem() is not None)),
)


def parse_args(argv):
    tiny = os.path.join(model_lib.CONFIG_DIR, "tiny.json")
    parser = ArgumentParser(prog="python -m training.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Root with nl/, multi/, mono/ and instruct/ versions.")
    parser.add_argument("--version", required=True, help="The version of every dataset (e.g. v1).")
    parser.add_argument("--ladder", required=True, help="A --cluster_ladder instruct version (index of clusters-<k>/).")
    parser.add_argument("--output", required=True, help="Folder to write (replaced).")
    parser.add_argument("--config", default=tiny, help="Config of the base chain and every instruct stage.")
    parser.add_argument("--configs", default=f"{tiny},{os.path.join(model_lib.CONFIG_DIR, 'tiny_wide.json')}",
                        help="Comma-separated configs of the model-size experiment.")
    parser.add_argument("--steps", type=int, help="Steps of every training stage (default: the configs' max_steps).")
    parser.add_argument("--instruct_steps", type=int, help="Steps of every instruct stage (default: --steps).")
    parser.add_argument("--holdout_split", help="Split of the instruct version to tune on and score"
                                                " (default: the first its index lists).")
    parser.add_argument("--tokenizer", help="tokenizer.model, if the manifests' path does not resolve here.")
    common.add_evaluation_flags(parser, compile_help="training.train's --compile for every stage (auto: on CUDA).")
    parser.add_argument("--only", help="Comma-separated experiments to run (default: all).")
    args = parser.parse_args(argv)
    known = [name for name, _, _ in EXPERIMENTS]
    args.only = [n for n in (args.only or ",".join(known)).split(",") if n]
    unknown = [n for n in args.only if n not in known]
    if unknown:
        raise UsageError(f"--only: unknown experiment {unknown[0]!r}; known: {', '.join(known)}")
    for flag in ("steps", "instruct_steps", "limit", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag} must be >= 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    corpus = common.corpus_data(args.data, args.version)
    split = demo.instruct_data(os.path.join(args.data, "instruct", args.version), args.holdout_split)
    try:
        dv.read_manifest(args.ladder)
    except dv.DatasetError as err:
        raise UsageError(f"--ladder: {err}; build it with pipelines.instruct --holdout_clusters A,B"
                         " --cluster_ladder (make experiments does)") from None
    shutil.rmtree(args.output, ignore_errors=True)
    os.makedirs(args.output)
    started = time.perf_counter()
    with logged(os.path.join(args.output, "base.log")):
        base = common.train_chain(corpus, os.path.join(args.output, "base"), args.config, steps=args.steps,
                                  device=args.device, tokenizer=args.tokenizer, compile_mode=args.compile)
    print(f"base chain nl -> multi -> mono ({os.path.basename(args.config)}): {time.perf_counter() - started:.0f} s",
          flush=True)
    context = Context(data=args.data, version=args.version, split=split, ladder=args.ladder, base=base,
                      config=args.config, configs=tuple(c for c in args.configs.split(",") if c), steps=args.steps,
                      instruct_steps=args.instruct_steps or args.steps,
                      limit=args.limit, device=args.device, batch_size=args.batch_size, tokenizer=args.tokenizer,
                      compile_mode=args.compile)
    reports, done = [], {}
    for name, module, settings in EXPERIMENTS:
        if name not in args.only:
            continue
        out_dir = os.path.join(args.output, name)
        t0 = time.perf_counter()
        log = os.path.join(args.output, f"{name}.log")
        with logged(log):
            rep = importlib.import_module(module).run(out_dir, **settings(context))
        seconds = time.perf_counter() - t0
        reports.append(rep)
        done[name] = {"seconds": round(seconds, 1), "results": rep["results"], "log": log,
                      "figures": [f["png"] for f in rep["figures"]]}
        print(f"{name}: {seconds:.0f} s. {rep['summary']}", flush=True)
    path = page.write(args.output, reports)
    out = {"page": path, "seconds": round(time.perf_counter() - started, 1), "experiments": done}
    print(json.dumps(out, sort_keys=True))
    return out


@contextlib.contextmanager
def logged(path: str):
    """Send what the stages print (a JSON line per training step) to ``path`` instead of stdout."""
    with open(path, "w", encoding="utf-8") as handle, contextlib.redirect_stdout(handle):
        yield


def run(argv=None) -> int:
    return common.run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(run())
