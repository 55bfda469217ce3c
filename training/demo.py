"""The tiny end-to-end run on CPU: demo data -> nl -> multi -> mono -> instruct checkpoints ->
HumanEval, MTPB (multi- and single-turn) and prompt perplexity with a few samples.

    python -m training.demo --data out/demo --version v1 --output out/demo/train/v1 \
        [--instruct_split holdout-sentiment] [--config training/configs/tiny.json] [--steps 4] [--n 2] \
        [--problems 2] [--max_new_tokens 32]

``--data`` is the root ``make demo`` writes, with one dataset version per stage at
``DATA/{nl,multi,mono,instruct}/VERSION``. An ``--all_holdouts`` instruct version is an index of
split folders: the instruct stage trains on one of them (``--instruct_split``, default the first
the index lists), as a split is a complete dataset and the root has no shards. It shows the stages
and the evaluation wired together, not a useful model: the tiny config trains for a few steps, so
scores are near zero. The output folder is replaced on each run. Completions are scored in the
bwrap sandbox where it runs; where it cannot, the demo says so and scores its own tiny model's
completions with only the sandbox's inner layers (``--unsafe_no_sandbox`` of the scoring commands).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from schemas import dataset_version as dv
from training.cli import ArgumentParser, UsageError, run_main
from training import model as model_lib
from training import train
from training.lineage import lineage_chain
from training.eval import humaneval, mtpb, perplexity, sandbox


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True,
                        help="Dataset root with nl/, multi/, mono/ and instruct/ versions (ROOT/DATASET/VERSION).")
    parser.add_argument("--version", required=True, help="The version of every dataset to train on (e.g. v1).")
    parser.add_argument("--instruct_split", help="Split folder of an --all_holdouts instruct version.")
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", default=os.path.join(model_lib.CONFIG_DIR, "tiny.json"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--n", type=int, default=2, help="Samples per HumanEval problem / MTPB case.")
    parser.add_argument("--problems", type=int, default=2, help="Problems of each benchmark.")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--tokenizer", help="tokenizer.model, if the manifests' path does not resolve here.")
    args = parser.parse_args(argv)

    data = {stage: os.path.join(args.data, stage, args.version) for stage in ("nl", "multi", "mono")}
    data["instruct"] = instruct_data(os.path.join(args.data, "instruct", args.version), args.instruct_split)
    shutil.rmtree(args.output, ignore_errors=True)
    os.makedirs(args.output)
    parent, summary = None, {}
    for stage in train.STAGES:
        out = os.path.join(args.output, stage)
        argv = ["--stage", stage, "--data", data[stage], "--output", out,
                "--config", args.config, "--max_steps", str(args.steps)]
        if parent:
            argv += ["--init", parent]
        elif args.tokenizer:
            argv += ["--tokenizer", args.tokenizer]
        summary[stage] = train.main(argv)
        parent = out
    summary["lineage"] = lineage_chain(parent)

    why = sandbox.problem()
    unsafe = why is not None
    if unsafe:
        print(f"note: the demo scores without the OS sandbox: {why}", file=sys.stderr)
    he = os.path.join(args.output, "humaneval.jsonl")
    humaneval.generate(parent, args.n, he, limit=args.problems, max_new_tokens=args.max_new_tokens, device="cpu")
    summary["humaneval"] = humaneval.score(he, ks=(1, args.n), unsafe_no_sandbox=unsafe)
    multi = os.path.join(args.output, "mtpb_multi.jsonl")
    single = os.path.join(args.output, "mtpb_single.jsonl")
    mtpb.generate(parent, multi, n=1, limit=args.problems, max_length_cap=args.max_new_tokens, device="cpu")
    mtpb.generate(parent, single, n=1, single_turn=True, limit=args.problems,
                  max_length_cap=args.max_new_tokens, device="cpu")
    summary["mtpb_multi_turn"] = mtpb.score(multi, timeout_s=10, unsafe_no_sandbox=unsafe)["pass_rate"]
    summary["mtpb_single_turn"] = mtpb.score(single, single_turn=True, timeout_s=10,
                                             unsafe_no_sandbox=unsafe)["pass_rate"]
    summary["perplexity"] = perplexity.main(["--checkpoint", parent, "--multi", multi + "_results.jsonl",
                                             "--single", single + "_results.jsonl", "--device", "cpu"])
    print(json.dumps({k: summary[k] for k in ("lineage", "humaneval", "mtpb_multi_turn", "mtpb_single_turn")}))
    return summary


def instruct_data(version: str, split) -> str:
    """The instruct stream to train on: the version itself, or one split folder of an index version."""
    try:
        version = dv.resolve(version)
        manifest = dv.read_manifest(version)
    except dv.DatasetError as err:
        raise UsageError(f"{err}; make the demo data first (make demo)") from None
    splits = manifest.get("splits") or {}
    if not splits:
        if split:
            raise UsageError(f"--instruct_split: {version} is a single split, not an --all_holdouts version")
        return version
    name = split or sorted(splits)[0]
    if name not in splits:
        raise UsageError(f"--instruct_split: {version} has no split {name!r}; it has {', '.join(sorted(splits))}")
    try:
        return dv.member_path(version, splits[name]["path"])
    except dv.DatasetError as err:
        raise UsageError(str(err)) from None


def run(argv=None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    sys.exit(run())
