"""MTPB, the CodeGen paper's Multi-Turn Programming Benchmark: 115 problems, 5 test cases each.

    python -m training.eval.mtpb generate --checkpoint DIR --output SAMPLES.jsonl [--n 1]
        [--single_turn] [--temperature 0.2] [--top_p 0.95] [--limit P] [--seed 0]
    python -m training.eval.mtpb score SAMPLES.jsonl [--single_turn] [--timeout_s 20] \
        [--unsafe_no_sandbox]

The rules are the paper's benchmark code's (codegen1/benchmark/mtpb_sample.py, mtpb_exec.py),
re-implemented here: each turn's template is filled with the test case's inputs
(``str.format``) and written as a comment ``# {prompt}\\n`` after the prefix
``# Import libraries.\\n\\nimport numpy as np\\n\\n`` and the program so far; the model's
completion for the turn is cut (:func:`truncate`) and appended with a blank line; generation per
turn stops at the problem's ``max_gen_length`` tokens (256 where absent). The finished program runs
in the sandbox with its last expression turned into ``print(...)``; the first argument of the last
``print`` call is compared with the expected output (:func:`equivalent`). The single-turn
counterpart writes all the turns' comments first and asks for one completion (then ``turns``
holds one completion, with ``max_gen_length`` times the number of turns as its budget). Where the
sandbox (bwrap, :mod:`training.eval.sandbox`) cannot run, ``score`` refuses in one line unless
given ``--unsafe_no_sandbox``.

Sample lines: ``{"id": "1", "case": 0..4, "turns": [completion, ...]}``. ``score`` writes
``SAMPLES.jsonl_results.jsonl`` (each sample plus ``passed`` and ``result``) and prints
``{"pass_rate": ..., "problems": {id: rate}, ...}`` as JSON on its last line.
"""

from __future__ import annotations

import ast
import collections
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor

from schemas.benchmarks import mtpb_problems
from training.eval import sandbox
from training.cli import ArgumentParser, UsageError, run_main

PREFIX = "# Import libraries.\n\nimport numpy as np\n\n"
DEFAULT_MAX_GEN_LENGTH = 256
TOLERANCE = 1e-6
_TERMINALS = [re.compile(p, re.MULTILINE) for p in (r"^#", re.escape("<|endoftext|>"), r"^'''", r'^"""', r"\n\n\n")]


def turn_prompts(problem: dict, case: int) -> list:
    """The problem's turn templates filled with test case ``case``'s inputs."""
    return [template.format(**problem["inputs"][case]) for template in problem["prompts"]]


def comment(prompt: str) -> str:
    return f"# {prompt}\n"


def truncate(completion: str) -> str:
    """The benchmark's cut: before a second top-level ``print`` or ``def``, then before the first
    comment line, end-of-text, top-level docstring or two blank lines."""
    for pattern in (r"^print", r"^def"):
        starts = [m.start() for m in re.finditer(pattern, completion, re.MULTILINE)]
        if len(starts) > 1:
            completion = completion[:starts[1]]
    cuts = [m.start() for m in (t.search(completion) for t in _TERMINALS) if m]
    return completion[:min(cuts)] if cuts else completion


def build_program(problem: dict, case: int, turns: list, single_turn: bool = False) -> str:
    """The program the turns make: prefix, then each turn's comment and completion."""
    prompts = turn_prompts(problem, case)
    if single_turn:
        return PREFIX + "".join(comment(p) for p in prompts) + f"{turns[0]}\n\n"
    return PREFIX + "".join(comment(p) + f"{t}\n\n" for p, t in zip(prompts, turns))


def with_final_print(code: str) -> str:
    """Turn the program's last statement into ``print(...)`` if it is an expression other than a
    print call, as the benchmark does; a program that does not parse is left for the run to fail."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return code
    last = tree.body[-1].value
    if isinstance(last, ast.Call) and isinstance(last.func, ast.Name) and last.func.id.startswith("print"):
        return code
    tree.body[-1].value = ast.Call(func=ast.Name(id="print", ctx=ast.Load()), args=[last], keywords=[])
    return ast.unparse(ast.fix_missing_locations(tree))


# Runs inside the sandbox around the program: captures print calls, compares the last printed
# value with the expected output there (where the real object is) and reports the verdict.
_HARNESS = r'''
import builtins, json, math
_stack = []
def _print(*args, **kwargs):
    _stack.append(args)
    return builtins.print(*args, **kwargs)

def _plain(o):
    t = str(type(o))
    if t == "<class 'pandas.core.series.Series'>":
        return o.to_numpy().tolist()
    if hasattr(o, "tolist") and type(o).__module__ == "numpy":
        return o.tolist()
    if isinstance(o, list) and o and isinstance(o[0], tuple):
        return [list(x) for x in o]
    return o

def _equal(got, want):
    if isinstance(want, bool) or isinstance(got, bool):
        return str(got) == str(want)
    if isinstance(want, float) or (isinstance(got, float) and isinstance(want, int)):
        return isinstance(got, (int, float)) and math.isclose(float(got), float(want), rel_tol=0, abs_tol=TOL)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_equal(g, w) for g, w in zip(got, want))
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_equal(got[k], want[k]) for k in want)
    return got == want

def _verdict(got, want):
    got = _plain(got)
    if type(got) != type(want) and not isinstance(want, bool):
        try:
            got = type(want)(got)
        except Exception as err:
            return False, f"cannot read {type(got).__name__} as {type(want).__name__}: {err}"
    return _equal(got, want), None

_g = {"__name__": "__main__", "print": _print}
_error = None
try:
    exec(compile(PROGRAM, "program.py", "exec"), _g)
except BaseException as err:
    _error = f"{type(err).__name__}: {err}"
if _error is None and not (_stack and _stack[-1]):
    _error = "no value printed"
if _error is None:
    try:
        _ok, _error = _verdict(_stack[-1][0], EXPECTED)
    except Exception as err:
        _ok, _error = False, f"{type(err).__name__}: {err}"
    _shown = repr(_stack[-1][0])[:200]
else:
    _ok, _shown = False, None
__sandbox_report__(json.dumps({"passed": bool(_ok), "error": _error, "value": _shown}))
'''


def check(problem: dict, case: int, turns: list, single_turn: bool, timeout_s: float,
          unsafe_no_sandbox: bool = False) -> dict:
    code = with_final_print(build_program(problem, case, turns, single_turn))
    harness = (_HARNESS.replace("PROGRAM", repr(code)).replace("EXPECTED", repr(problem["outputs"][case]))
               .replace("TOL", repr(TOLERANCE)))
    result = sandbox.run_python(harness, timeout_s=timeout_s, preload=("numpy",), unsafe_no_sandbox=unsafe_no_sandbox)
    if result.status == "timeout":
        return {"passed": False, "result": "timed out"}
    try:
        verdict = json.loads(result.data.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"passed": False, "result": result.summary()}
    return {"passed": verdict["passed"],
            "result": "passed" if verdict["passed"] else f"failed: {verdict['error'] or verdict['value']}"}


def score(samples_path: str, single_turn: bool = False, timeout_s: float = 20.0, workers: int = 2,
          data: str | None = None, unsafe_no_sandbox: bool = False) -> dict:
    sandbox.require(unsafe_no_sandbox)
    table = mtpb_problems(data)
    with open(samples_path, encoding="utf-8") as handle:
        samples = [json.loads(line) for line in handle if line.strip()]
    for i, s in enumerate(samples):
        p = table.get(str(s.get("id")))
        turns = s.get("turns")
        ok = p is not None and isinstance(s.get("case"), int) and 0 <= s["case"] < len(p["inputs"]) \
            and isinstance(turns, list) and all(isinstance(t, str) for t in turns) \
            and len(turns) == (1 if single_turn else len(p["prompts"]))
        if not ok:
            raise UsageError(f"{samples_path}:{i + 1}: needs a known id, a case 0-4 and one completion "
                             f"{'in all' if single_turn else 'per turn'} in 'turns'")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(
            lambda s: check(table[str(s["id"])], s["case"], s["turns"], single_turn, timeout_s, unsafe_no_sandbox),
            samples))
    with open(samples_path + "_results.jsonl", "w", encoding="utf-8") as handle:
        for s, r in zip(samples, results):
            handle.write(json.dumps({**s, **r}) + "\n")
    per_problem = collections.defaultdict(list)
    for s, r in zip(samples, results):
        per_problem[str(s["id"])].append(r["passed"])
    return {"mode": "single_turn" if single_turn else "multi_turn",
            "pass_rate": sum(r["passed"] for r in results) / len(results) if results else 0.0,
            "samples": len(results),
            "problems": {pid: sum(v) / len(v) for pid, v in sorted(per_problem.items(), key=lambda kv: int(kv[0]))}}


def generate(checkpoint: str, output: str, *, n=1, single_turn=False, temperature=0.2, top_p=0.95,
             limit=None, seed=0, device="auto", max_length_cap=None) -> int:
    from training.eval.generate import Generator

    gen = Generator(checkpoint, device)
    rows = []
    for pid, problem in list(mtpb_problems().items())[:limit]:
        budget = problem.get("max_gen_length", DEFAULT_MAX_GEN_LENGTH)
        if max_length_cap:
            budget = min(budget, max_length_cap)
        for case in range(len(problem["inputs"])):
            prompts = turn_prompts(problem, case)
            for sample in range(n):
                key = f"{pid}:{case}:{sample}"
                if single_turn:
                    text = PREFIX + "".join(comment(p) for p in prompts)
                    out = gen.sample(text, 1, budget * len(prompts), temperature=temperature, top_p=top_p,
                                     seed=seed, key=key)[0]
                    turns = [truncate(out)]
                else:
                    history, turns = PREFIX, []
                    for t, prompt in enumerate(prompts):
                        history += comment(prompt)
                        out = gen.sample(history, 1, budget, temperature=temperature, top_p=top_p, seed=seed,
                                         key=f"{key}:{t}")[0]
                        turns.append(truncate(out))
                        history += f"{turns[-1]}\n\n"
                rows.append({"id": pid, "case": case, "sample": sample, "turns": turns})
    with open(output, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return len(rows)


def main(argv=None) -> None:
    parser = ArgumentParser(prog="python -m training.eval.mtpb", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--checkpoint", required=True)
    g.add_argument("--output", required=True)
    g.add_argument("--n", type=int, default=1, help="Samples per problem and test case.")
    g.add_argument("--single_turn", action="store_true")
    g.add_argument("--temperature", type=float, default=0.2)
    g.add_argument("--top_p", type=float, default=0.95)
    g.add_argument("--limit", type=int, help="Only the first P problems (smoke runs).")
    g.add_argument("--max_new_tokens", type=int, help="Cap on each problem's max_gen_length (smoke runs).")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto")
    s = sub.add_parser("score")
    s.add_argument("samples")
    s.add_argument("--single_turn", action="store_true")
    s.add_argument("--timeout_s", type=float, default=20.0)
    s.add_argument("--workers", type=int, default=2)
    sandbox.add_flag(s)
    args = parser.parse_args(argv)
    if args.command == "generate":
        count = generate(args.checkpoint, args.output, n=args.n, single_turn=args.single_turn,
                         temperature=args.temperature, top_p=args.top_p, limit=args.limit, seed=args.seed,
                         device=args.device, max_length_cap=args.max_new_tokens)
        print(json.dumps({"samples": count, "output": args.output}))
    else:
        print(json.dumps(score(args.samples, args.single_turn, args.timeout_s, args.workers,
                               unsafe_no_sandbox=args.unsafe_no_sandbox)))


def run(argv=None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    sys.exit(run())
