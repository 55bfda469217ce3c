"""The tiny end-to-end run on CPU: demo data -> nl -> multi -> mono checkpoints -> HumanEval, MTPB
(multi- and single-turn) and prompt perplexity with a few samples.

    python -m training.demo --data out/demo --output out/demo/train [--config training/configs/tiny.json]
        [--steps 4] [--n 2] [--problems 3] [--max_new_tokens 48]

``--data`` holds the ``nl``, ``multi`` and ``mono`` dataset versions that ``make demo`` writes. It
shows the stages and the evaluation wired together, not a useful model: the tiny config trains
for a few steps, so scores are near zero. The output folder is replaced on each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from training import model as model_lib
from training import train
from training.eval import humaneval, mtpb, perplexity


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m training.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="Folder with nl/, multi/ and mono/ dataset versions.")
    parser.add_argument("--output", required=True)
    parser.add_argument("--config", default=os.path.join(model_lib.CONFIG_DIR, "tiny.json"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--n", type=int, default=2, help="Samples per HumanEval problem / MTPB case.")
    parser.add_argument("--problems", type=int, default=2, help="Problems of each benchmark.")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--tokenizer", help="tokenizer.model, if the manifests' path does not resolve here.")
    args = parser.parse_args(argv)

    shutil.rmtree(args.output, ignore_errors=True)
    os.makedirs(args.output)
    parent, summary = None, {}
    for stage in ("nl", "multi", "mono"):
        out = os.path.join(args.output, stage)
        argv = ["--stage", stage, "--data", os.path.join(args.data, stage), "--output", out,
                "--config", args.config, "--max_steps", str(args.steps)]
        if parent:
            argv += ["--init", parent]
        elif args.tokenizer:
            argv += ["--tokenizer", args.tokenizer]
        summary[stage] = train.main(argv)
        parent = out
    summary["lineage"] = train.lineage_chain(parent)

    he = os.path.join(args.output, "humaneval.jsonl")
    humaneval.generate(parent, args.n, he, limit=args.problems, max_new_tokens=args.max_new_tokens, device="cpu")
    summary["humaneval"] = humaneval.score(he, ks=(1, args.n))
    multi = os.path.join(args.output, "mtpb_multi.jsonl")
    single = os.path.join(args.output, "mtpb_single.jsonl")
    mtpb.generate(parent, multi, n=1, limit=args.problems, max_length_cap=args.max_new_tokens, device="cpu")
    mtpb.generate(parent, single, n=1, single_turn=True, limit=args.problems,
                  max_length_cap=args.max_new_tokens, device="cpu")
    summary["mtpb_multi_turn"] = mtpb.score(multi, timeout_s=10)["pass_rate"]
    summary["mtpb_single_turn"] = mtpb.score(single, single_turn=True, timeout_s=10)["pass_rate"]
    summary["perplexity"] = perplexity.main(["--checkpoint", parent, "--multi", multi + "_results.jsonl",
                                             "--single", single + "_results.jsonl", "--device", "cpu"])
    print(json.dumps({k: summary[k] for k in ("lineage", "humaneval", "mtpb_multi_turn", "mtpb_single_turn")}))
    return summary


def run(argv=None) -> int:
    try:
        main(argv)
    except (train.UsageError, humaneval.UsageError, mtpb.UsageError, perplexity.UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run())
