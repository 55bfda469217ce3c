"""CodeGen's figures: HumanEval prompt perplexity of pass and non-pass problems beside pass@k, and
MTPB multi-turn against single-turn prompts (pass rate and prompt perplexity) per problem.

    python -m training.experiments.codegen --checkpoint DIR --output DIR [--problems P] [--samples N] \
        [--max_new_tokens T] [--device auto] [--unsafe_no_sandbox]

The CodeGen paper's two arguments about prompts, measured on one checkpoint:

- **HumanEval** (the paper's table of prompt perplexity for pass and non-pass problems): ``N``
  completions of each of the first ``P`` problems (``training.eval.humaneval``: temperature 0.2,
  Codex stop sequences), scored in the sandbox; a problem *passes* when any of its samples passes.
  Each problem's prompt perplexity is ``exp(mean NLL)`` of its prompt tokens
  (``perplexity.humaneval_prompt_perplexity``); the table gives their mean and standard error over
  pass and non-pass problems, beside pass@k (k in 1, 10, 100 up to N, and N).
- **MTPB** (the paper's multi-turn against concatenated single-turn specifications): the first
  ``P`` problems, ``N`` samples of each of their 5 test cases, generated and scored both ways
  (``training.eval.mtpb``); each sample's prompt perplexity is ``training.eval.perplexity``'s
  (multi-turn: each turn's comment given the program so far). Per problem: the pass rate of each
  mode and the mean and standard error of its samples' prompt perplexity.

``--max_new_tokens`` caps generation (HumanEval's budget, each MTPB turn's ``max_gen_length``);
without it the benchmarks' own budgets apply (512; the problem's). Writes ``results.json``,
the generated and scored samples (``humaneval.jsonl``, ``mtpb_{multi,single}.jsonl`` and their
``_results.jsonl``) and the figures (PNG and SVG) into ``--output``, and prints a summary as JSON on
its last line. Completions run in the bwrap sandbox; where it cannot run this refuses in one line,
unless given ``--unsafe_no_sandbox`` (only for completions you trust, such as a tiny model's own:
see training/README.md, Security notes). A model trained for a few steps on CPU scores near chance;
the run shows the experiment wired end to end, and the same code runs at scale.
"""

from __future__ import annotations

import collections
import json
import os
import sys

from schemas.benchmarks import humaneval_problems, mtpb_problems
from training.cli import ArgumentParser, UsageError, run_main
from training.eval import humaneval, mtpb, passk, perplexity, sandbox
from training.experiments import plotting
from training.lineage import lineage_chain

NAME = "codegen"
TITLE = "CodeGen: prompt perplexity and pass rates (HumanEval, MTPB multi- vs single-turn)"
HUMANEVAL_MAX_NEW_TOKENS = 512  # training.eval.humaneval's default budget
MODES = ("multi_turn", "single_turn")
MODE_LABEL = {"multi_turn": "multi-turn", "single_turn": "single-turn"}


def run(out_dir: str, checkpoint: str, *, problems: int | None = None, samples: int = 1,
        max_new_tokens: int | None = None, device: str = "auto", unsafe_no_sandbox: bool = False) -> dict:
    """Generate, score and measure on ``checkpoint``; write results, samples and figures to ``out_dir``;
    return the experiments' interface dict (name, title, summary, tables, figures, results)."""
    if problems is not None and problems < 1:
        raise UsageError(f"problems must be >= 1, got {problems}")
    if samples < 1:
        raise UsageError(f"samples must be >= 1, got {samples}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise UsageError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    sandbox.require(unsafe_no_sandbox)  # before any generation: refuse early where scoring cannot run
    lineage = lineage_chain(checkpoint)
    os.makedirs(out_dir, exist_ok=True)
    from training.eval.generate import Generator

    gen = Generator(checkpoint, device)
    results = {
        "name": NAME, "checkpoint": checkpoint, "lineage": lineage,
        "settings": {"problems": problems, "samples": samples, "max_new_tokens": max_new_tokens,
                     "temperature": 0.2, "device": str(gen.device)},
        "sandbox": "none (--unsafe_no_sandbox)" if unsafe_no_sandbox else "bwrap",
        "humaneval": humaneval_part(out_dir, checkpoint, gen, problems, samples, max_new_tokens, device,
                                    unsafe_no_sandbox),
        "mtpb": mtpb_part(out_dir, checkpoint, gen, problems, samples, max_new_tokens, device, unsafe_no_sandbox),
    }
    path = os.path.join(out_dir, "results.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
        handle.write("\n")
    return {"name": NAME, "title": TITLE, "summary": summary_text(results), "tables": tables(results),
            "figures": figures(results, out_dir), "results": path}


# HumanEval -------------------------------------------------------------------------------------

def ks_for(samples: int) -> tuple:
    """pass@k reported: the paper's k (1, 10, 100) that ``samples`` allows, and ``samples`` itself."""
    return tuple(sorted({k for k in (1, 10, 100) if k <= samples} | {samples}))


def humaneval_part(out_dir, checkpoint, gen, problems, samples, max_new_tokens, device, unsafe) -> dict:
    path = os.path.join(out_dir, "humaneval.jsonl")
    humaneval.generate(checkpoint, samples, path, limit=problems, device=device,
                       max_new_tokens=max_new_tokens or HUMANEVAL_MAX_NEW_TOKENS)
    ks = ks_for(samples)
    pass_at = humaneval.score(path, ks=ks, unsafe_no_sandbox=unsafe)
    table = humaneval_problems()
    counts = collections.OrderedDict()
    for row in humaneval.read_jsonl(path + "_results.jsonl"):
        n, c = counts.get(row["task_id"], (0, 0))
        counts[row["task_id"]] = (n + 1, c + int(row["passed"]))
    per_problem = []
    for task_id, (n, c) in counts.items():
        per_problem.append({"task_id": task_id, "samples": n, "passed_samples": c, "passed": c > 0,
                            "pass@k": {str(k): passk.pass_at_k(n, c, k) for k in ks},
                            "prompt_perplexity": perplexity.humaneval_prompt_perplexity(gen, table[task_id])})
    groups = {name: stats([p["prompt_perplexity"] for p in per_problem if p["passed"] == want])
              for name, want in (("pass", True), ("non_pass", False))}
    return {"pass@k": pass_at, "perplexity": groups, "problems": per_problem,
            "samples_file": os.path.basename(path)}


# MTPB ------------------------------------------------------------------------------------------

def mtpb_part(out_dir, checkpoint, gen, problems, samples, max_new_tokens, device, unsafe) -> dict:
    names = {pid: p["name"] for pid, p in mtpb_problems().items()}
    scored = {}
    for mode in MODES:
        single = mode == "single_turn"
        path = os.path.join(out_dir, f"mtpb_{mode.split('_')[0]}.jsonl")
        mtpb.generate(checkpoint, path, n=samples, single_turn=single, limit=problems, device=device,
                      max_length_cap=max_new_tokens)
        mtpb.score(path, single_turn=single, unsafe_no_sandbox=unsafe)
        scored[mode] = perplexity.scored_perplexities(gen, path + "_results.jsonl", single)
    per_problem = collections.OrderedDict()
    for mode in MODES:
        for row, ppl in scored[mode]:
            entry = per_problem.setdefault(str(row["id"]), {"id": str(row["id"]), "name": names[str(row["id"])]})
            side = entry.setdefault(mode, {"samples": 0, "passed_samples": 0, "perplexities": []})
            side["samples"] += 1
            side["passed_samples"] += int(row["passed"])
            side["perplexities"].append(ppl)
    for entry in per_problem.values():
        for mode in MODES:
            side = entry[mode]
            side["pass_rate"] = side["passed_samples"] / side["samples"]
            side["perplexity"] = stats(side["perplexities"])
    modes = {}
    for mode in MODES:
        rows = scored[mode]
        modes[mode] = {"samples": len(rows), "pass_rate": sum(r["passed"] for r, _ in rows) / len(rows),
                       "perplexity": stats([p for _, p in rows]),
                       "perplexity_passed": stats([p for r, p in rows if r["passed"]]),
                       "perplexity_not_passed": stats([p for r, p in rows if not r["passed"]])}
    return {"modes": modes, "problems": list(per_problem.values())}


# Numbers, tables, figures ----------------------------------------------------------------------

def stats(values: list) -> dict:
    """``{"n", "mean", "stderr"}`` of per-problem or per-sample values (None where there are none)."""
    if not values:
        return {"n": 0, "mean": None, "stderr": None}
    mean, se = plotting.mean_and_standard_error(values)
    return {"n": len(values), "mean": mean, "stderr": se}


def fmt(s: dict) -> str:
    return "-" if s["n"] == 0 else f"{s['mean']:.2f} ± {s['stderr']:.2f}"


def over(s: dict, group: str) -> str:
    return f"{fmt(s)} over {s['n']} {group} problems" if s["n"] else f"- (no {group} problems)"


def tables(results: dict) -> list:
    he, mt = results["humaneval"], results["mtpb"]
    ks = list(he["pass@k"])
    groups = he["perplexity"]
    out = [{"caption": "HumanEval: prompt perplexity (mean ± standard error over problems) of pass and non-pass "
                       "problems, beside pass@k",
            "columns": ks + ["pass problems", "perplexity (pass)", "non-pass problems", "perplexity (non-pass)"],
            "rows": [[round(he["pass@k"][k], 4) for k in ks]
                     + [groups["pass"]["n"], fmt(groups["pass"]), groups["non_pass"]["n"], fmt(groups["non_pass"])]]}]
    problem_ks = list(he["problems"][0]["pass@k"])
    out.append({"caption": "HumanEval per problem: samples passed, pass@k and prompt perplexity",
                "columns": ["problem", "samples", "passed samples", "passed"] + [f"pass@{k}" for k in problem_ks]
                + ["prompt perplexity"],
                "rows": [[p["task_id"], p["samples"], p["passed_samples"], "yes" if p["passed"] else "no"]
                         + [round(p["pass@k"][k], 4) for k in problem_ks] + [round(p["prompt_perplexity"], 2)]
                         for p in he["problems"]]})
    out.append({"caption": "MTPB: multi-turn against concatenated single-turn prompts; prompt perplexity "
                           "(mean ± standard error over samples), all and by outcome",
                "columns": ["prompts", "samples", "pass rate", "perplexity", "perplexity (passed)",
                            "perplexity (not passed)"],
                "rows": [[MODE_LABEL[m], s["samples"], round(s["pass_rate"], 4), fmt(s["perplexity"]),
                          fmt(s["perplexity_passed"]), fmt(s["perplexity_not_passed"])]
                         for m, s in mt["modes"].items()]})
    out.append({"caption": "MTPB per problem: pass rate and prompt perplexity (mean ± standard error over its "
                           "samples), multi-turn against single-turn",
                "columns": ["problem", "name", "samples", "pass rate (multi)", "pass rate (single)",
                            "perplexity (multi)", "perplexity (single)"],
                "rows": [[p["id"], p["name"], p["multi_turn"]["samples"], round(p["multi_turn"]["pass_rate"], 4),
                          round(p["single_turn"]["pass_rate"], 4), fmt(p["multi_turn"]["perplexity"]),
                          fmt(p["single_turn"]["perplexity"])] for p in mt["problems"]]})
    return out


def figures(results: dict, out_dir: str) -> list:
    return [humaneval_figure(results["humaneval"], os.path.join(out_dir, "humaneval_perplexity")),
            mtpb_figure(results["mtpb"], os.path.join(out_dir, "mtpb_perplexity"))]


def humaneval_figure(he: dict, stem: str) -> dict:
    """Bars of the mean prompt perplexity of pass and non-pass problems with standard-error bars, and
    each problem's own value as a dot; pass@k in the title."""
    fig, ax = plotting.new_figure(5.0, 4.0)
    top = 0.0
    for x, (name, label, color) in enumerate((("pass", "pass", "tab:green"), ("non_pass", "non-pass", "tab:red"))):
        s = he["perplexity"][name]
        values = [p["prompt_perplexity"] for p in he["problems"] if p["passed"] == (name == "pass")]
        if s["n"]:
            ax.bar(x, s["mean"], 0.6, yerr=s["stderr"], capsize=6, color=color, alpha=0.6,
                   label=f"{label} (n={s['n']})")
            offsets = [0.0] if len(values) == 1 else [-0.2 + 0.4 * i / (len(values) - 1) for i in range(len(values))]
            ax.scatter([x + o for o in offsets], values, color="black", s=10, zorder=3)
            top = max(top, s["mean"] + s["stderr"], *values)
        else:
            ax.text(x, 0, "no problems", ha="center", va="bottom")
    ax.set_xticks([0, 1], ["pass", "non-pass"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(0, top * 1.25 or 1)
    ax.set_ylabel("prompt perplexity")
    ax.set_title("HumanEval prompt perplexity\n" + ", ".join(f"{k} = {v:.3f}" for k, v in he["pass@k"].items()),
                 fontsize=10)
    ax.legend(loc="upper left")
    return {"caption": "HumanEval: mean prompt perplexity of pass and non-pass problems (bars: mean ± standard "
                       "error; dots: problems), with pass@k", **plotting.save(fig, stem)}


def mtpb_figure(mt: dict, stem: str) -> dict:
    """Paired bars per problem, multi-turn beside single-turn: prompt perplexity (mean ± standard error
    over the problem's samples), each bar labelled with its pass rate."""
    problems = mt["problems"]
    fig, ax = plotting.new_figure(max(5.0, 1.2 * len(problems) + 2), 4.0)
    xs = list(range(len(problems)))
    top = 0.0
    for shift, mode, color in ((-0.2, "multi_turn", "tab:blue"), (0.2, "single_turn", "tab:orange")):
        means = [p[mode]["perplexity"]["mean"] for p in problems]
        errors = [p[mode]["perplexity"]["stderr"] for p in problems]
        bars = ax.bar([x + shift for x in xs], means, 0.4, yerr=errors, capsize=4, color=color,
                      label=f"{MODE_LABEL[mode]} (pass rate {mt['modes'][mode]['pass_rate']:.2f})")
        ax.bar_label(bars, labels=[f"{p[mode]['pass_rate']:.2f}" for p in problems], padding=4, fontsize=7)
        top = max(top, *(m + e for m, e in zip(means, errors)))
    ax.set_xticks(xs, [f"{p['id']}\n{p['name']}" for p in problems], fontsize=8)
    ax.set_ylim(0, top * 1.3 or 1)
    ax.set_xlabel("MTPB problem (bar labels: pass rate)")
    ax.set_ylabel("prompt perplexity")
    ax.set_title("MTPB prompt perplexity and pass rate\nmulti-turn vs single-turn", fontsize=10)
    ax.legend(loc="upper left", ncols=2, fontsize=8)
    return {"caption": "MTPB: prompt perplexity per problem, multi-turn beside single-turn (mean ± standard error "
                       "over its samples), each bar labelled with the problem's pass rate in that mode",
            **plotting.save(fig, stem)}


def summary_text(results: dict) -> str:
    he, mt, s = results["humaneval"], results["mtpb"], results["settings"]
    stage = results["lineage"][-1] if results["lineage"] else {}
    g = he["perplexity"]
    modes = mt["modes"]
    return (f"One checkpoint ({stage.get('stage', '?')} stage on {stage.get('data', '?')}) on the first "
            f"{len(he['problems'])} of 164 HumanEval problems ({s['samples']} samples each, temperature 0.2) and the "
            f"first {len(mt['problems'])} of 115 MTPB problems (5 test cases x {s['samples']} samples, multi- and "
            f"single-turn), completions scored in the {'bwrap sandbox' if results['sandbox'] == 'bwrap' else 'inner sandbox layers only (--unsafe_no_sandbox)'}. "
            f"HumanEval: " + ", ".join(f"{k} {v:.3f}" for k, v in he["pass@k"].items())
            + f"; prompt perplexity {over(g['pass'], 'pass')} and {over(g['non_pass'], 'non-pass')} "
            "(mean ± standard error). MTPB: multi-turn pass rate "
            f"{modes['multi_turn']['pass_rate']:.3f}, prompt perplexity {fmt(modes['multi_turn']['perplexity'])}; "
            f"single-turn {modes['single_turn']['pass_rate']:.3f}, {fmt(modes['single_turn']['perplexity'])}. "
            "The paper's findings are lower prompt perplexity for problems the model solves and for multi-turn "
            "prompts; a tiny model trained for a few steps on CPU scores near chance (pass rates near 0, "
            "perplexities of the order of its vocabulary size), so its numbers only show the experiment wired end to end; "
            "the same code measures a real model at scale.")


def summary(results_or_run: dict) -> dict:
    """The printed line: the headline numbers and where the files are."""
    with open(results_or_run["results"], encoding="utf-8") as handle:
        r = json.load(handle)
    he, mt = r["humaneval"], r["mtpb"]
    return {"name": NAME, "humaneval": {"pass@k": he["pass@k"],
                                        "perplexity": {g: he["perplexity"][g] for g in ("pass", "non_pass")}},
            "mtpb": {m: {"pass_rate": mt["modes"][m]["pass_rate"], "perplexity": mt["modes"][m]["perplexity"]}
                     for m in MODES},
            "results": results_or_run["results"],
            "figures": [f["png"] for f in results_or_run["figures"]]}


def main(argv=None) -> dict:
    parser = ArgumentParser(prog="python -m training.experiments.codegen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="Checkpoint folder (training.train output).")
    parser.add_argument("--output", required=True, help="Folder for results.json, samples and figures.")
    parser.add_argument("--problems", type=int, help="Only the first P problems of each benchmark (default all).")
    parser.add_argument("--samples", type=int, default=1, help="Samples per HumanEval problem / MTPB test case.")
    parser.add_argument("--max_new_tokens", type=int, help="Cap on generated tokens (default: the benchmarks').")
    parser.add_argument("--device", default="auto")
    sandbox.add_flag(parser)
    args = parser.parse_args(argv)
    out = run(args.output, args.checkpoint, problems=args.problems, samples=args.samples,
              max_new_tokens=args.max_new_tokens, device=args.device, unsafe_no_sandbox=args.unsafe_no_sandbox)
    print(json.dumps(summary(out)))
    return out


def cli(argv=None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
