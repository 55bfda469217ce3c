"""Prompt perplexity on MTPB, multi-turn against single-turn, for passed and not-passed samples.

    python -m training.eval.perplexity --checkpoint DIR --multi MULTI_RESULTS.jsonl \
        [--single SINGLE_RESULTS.jsonl] [--device auto]

The CodeGen paper's argument for multi-turn prompting: a model understands a problem split into
turns better, measured as a lower perplexity of the prompts. For each scored sample (the
``..._results.jsonl`` files that ``training.eval.mtpb score`` writes), the perplexity of its prompt
tokens is ``exp(mean NLL)``: multi-turn, every turn's comment given the program so far (prefix,
earlier comments and the model's own completions); single-turn, the comments written together
after the prefix. The table gives the mean and standard error of the perplexity per sample for
samples that passed and that did not.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from schemas.benchmarks import mtpb_problems
from training.eval import mtpb
from training.cli import ArgumentParser, UsageError, run_main


def prompt_perplexity(gen, problem: dict, case: int, turns: list, single_turn: bool) -> float:
    prompts = mtpb.turn_prompts(problem, case)
    if single_turn:
        nll, count = gen.token_nll(mtpb.PREFIX, "".join(mtpb.comment(p) for p in prompts))
    else:  # each turn's comment given the program so far, all turns in one batch
        pairs, history = [], mtpb.PREFIX
        for prompt, turn in zip(prompts, turns):
            pairs.append((gen.encode_prompt(history), gen.tokenizer.encode(mtpb.comment(prompt))))
            history += mtpb.comment(prompt) + f"{turn}\n\n"
        scored = gen.continuation_logprobs(pairs)
        nll, count = -sum(logp for logp, _ in scored), sum(n for _, n in scored)
    return math.exp(nll / count) if count else float("nan")


def summarize(values: list) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {"n": 0, "mean": None, "stderr": None}
    stderr = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else None
    return {"n": int(arr.size), "mean": float(arr.mean()), "stderr": stderr}


def humaneval_prompt_perplexity(gen, problem: dict) -> float:
    """``exp(mean NLL)`` of a HumanEval problem's prompt tokens, as generation sees the prompt (after
    an end-of-text, the way a document starts in the packed streams)."""
    nll, count = gen.token_nll("", problem["prompt"])
    return math.exp(nll / count) if count else float("nan")


def scored_perplexities(gen, results_path: str, single_turn: bool) -> list:
    """``(row, prompt perplexity)`` for every scored sample of an ``mtpb score`` results file, in file order."""
    problems = mtpb_problems()
    out = []
    with open(results_path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            if "passed" not in row:
                raise UsageError(f"{results_path}: not a scored results file (no 'passed'); run mtpb score first")
            out.append((row, prompt_perplexity(gen, problems[str(row["id"])], row["case"], row["turns"], single_turn)))
    return out


def table(gen, results_path: str, single_turn: bool) -> dict:
    groups = {"passed": [], "not_passed": []}
    for row, ppl in scored_perplexities(gen, results_path, single_turn):
        groups["passed" if row["passed"] else "not_passed"].append(ppl)
    return {name: summarize(values) for name, values in groups.items()}


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m training.eval.perplexity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--multi", required=True, help="Scored multi-turn results (mtpb score output).")
    parser.add_argument("--single", help="Scored single-turn results (mtpb score --single_turn output).")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    from training.eval.generate import Generator

    gen = Generator(args.checkpoint, args.device)
    out = {"multi_turn": table(gen, args.multi, False)}
    if args.single:
        out["single_turn"] = table(gen, args.single, True)
    print(f"{'prompts':<12} {'samples':<11} {'n':>5} {'mean ppl':>12} {'stderr':>10}")
    for mode, groups in out.items():
        for name, s in groups.items():
            mean = f"{s['mean']:.3f}" if s["mean"] is not None else "-"
            err = f"{s['stderr']:.3f}" if s["stderr"] is not None else "-"
            print(f"{mode:<12} {name:<11} {s['n']:>5} {mean:>12} {err:>10}")
    print(json.dumps(out))
    return out


def run(argv=None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    sys.exit(run())
