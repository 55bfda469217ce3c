"""Evaluation: the sandbox's defences, pass@k, HumanEval and MTPB scoring, prompt perplexity."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import itertools
import json
import math
import os
import socket
import subprocess
import sys
import threading


from schemas.benchmarks import humaneval_problems, mtpb_problems
from training.eval import humaneval, mtpb, passk, sandbox


# Sandbox ---------------------------------------------------------------------------------------

def test_sandbox_runs_a_program_and_reports_its_output():
    r = sandbox.run_python("import math\nprint(math.factorial(10))")
    assert r.passed and r.stdout.strip() == "3628800"
    r = sandbox.run_python("raise ValueError('nope')")
    assert r.status == "failed" and r.summary() == "failed: ValueError: nope"


def test_sandbox_stops_an_infinite_loop():
    r = sandbox.run_python("while True:\n    pass", timeout_s=1)
    assert r.status == "timeout" and r.summary() == "timed out"


def test_sandbox_stops_a_fork_bomb():
    bomb = "import os\nwhile True:\n    os.fork()"
    r = sandbox.run_python(bomb, timeout_s=2)
    assert not r.passed and "os.fork is not allowed" in r.stderr
    r = sandbox.run_python("import multiprocessing\nmultiprocessing.Process(target=print).start()", timeout_s=2)
    assert not r.passed and "not allowed" in r.stderr


def test_sandbox_refuses_processes_and_ctypes():
    for code in ("import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')",
                 "import ctypes\nctypes.CDLL(None)", "import os\nos.execv('/bin/true', ['true'])",
                 "import ctypes\nctypes.pythonapi.Py_GetVersion()"):
        r = sandbox.run_python(code, timeout_s=2)
        assert not r.passed and "not allowed" in r.stderr, code


def test_sandbox_writes_only_inside_its_folder(tmp_path):
    target = tmp_path / "outside.txt"
    r = sandbox.run_python(f"open({str(target)!r}, 'w').write('x')", timeout_s=2)
    assert not r.passed and not target.exists()
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    for code in (f"import os\nos.remove({str(keep)!r})", f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
                 "open('../escape.txt', 'w').write('x')", f"import os\nos.rename({str(keep)!r}, 'k')"):
        r = sandbox.run_python(code, timeout_s=2)
        assert not r.passed, code
    assert keep.read_text() == "mine"
    r = sandbox.run_python("open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())")
    assert r.passed and r.stdout.strip() == "ok"


def test_sandbox_blocks_the_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    server.settimeout(3)
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)))
    thread.start()
    r = sandbox.run_python(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                           "s.sendall(b'leak')", timeout_s=3)
    thread.join()
    server.close()
    assert not r.passed and accepted == [None]


def _accept(server):
    try:
        conn, _ = server.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


def test_sandbox_kernel_layers_hold_without_the_audit_hook(tmp_path):
    """Under bwrap, writes outside the folder and connections fail in the kernel even with the
    in-process hook left out (the layers do not depend on each other)."""
    target = tmp_path / "outside.txt"
    r = sandbox.run_python(f"open({str(target)!r}, 'w').write('x')", audit=False, timeout_s=3)
    assert not r.passed and "No such file or directory" in r.stderr and not target.exists()
    for path in ("/x", "/usr/x", "/dev/shm/x"):  # bwrap's own root and /dev: read-only, only the folder takes writes
        r = sandbox.run_python(f"open({path!r}, 'w')", audit=False, timeout_s=3)
        assert not r.passed and "Read-only file system" in r.stderr, path
    r = sandbox.run_python("open('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())", audit=False)
    assert r.passed and r.stdout.strip() == "ok"
    r = sandbox.run_python("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)", audit=False,
                           timeout_s=3)
    assert not r.passed and ("unreachable" in r.stderr or "refused" in r.stderr)


@pytest.mark.skipif(os.geteuid() != 0, reason="without bwrap, the mount namespace is the root (CI) layer")
def test_sandbox_root_layers_without_bwrap_or_audit_hook(tmp_path):
    """Without bwrap, as root, writes outside the folder fail in the kernel (a mount namespace of
    the child's own) even with the in-process hook left out."""
    probe = sandbox.run_python("import os\nprint(os.geteuid())", audit=False, unsafe_no_sandbox=True)
    target = tmp_path / "outside.txt"
    r = sandbox.run_python(f"open({str(target)!r}, 'w').write('x')", audit=False, timeout_s=3, unsafe_no_sandbox=True)
    if "Read-only file system" not in r.stderr:
        pytest.skip(f"this kernel refused the mount namespace ({probe.stdout.strip()}: {r.summary()})")
    assert not target.exists()
    r = sandbox.run_python("open('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())", audit=False,
                           unsafe_no_sandbox=True)
    assert r.passed and r.stdout.strip() == "ok"
    r = sandbox.run_python("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=2)", audit=False,
                           timeout_s=3, unsafe_no_sandbox=True)
    assert not r.passed and ("unreachable" in r.stderr or "refused" in r.stderr)


def test_sandbox_hook_survives_rebinding(tmp_path):
    target = tmp_path / "x.txt"
    for code in ("import sys\nsys.modules['__main__'].__dict__.clear()\nopen(TARGET, 'w')",
                 "import posixpath, os\nposixpath.realpath = os.path.realpath = lambda p: os.getcwd()\n"
                 "open(TARGET, 'w')",
                 "import gc\ngc.get_objects()"):
        r = sandbox.run_python(code.replace("TARGET", repr(str(target))), timeout_s=3)
        assert not r.passed and "sandbox:" in r.stderr, code
    assert not target.exists()


def test_sandbox_memory_limit():
    r = sandbox.run_python("x = bytearray(1 << 31)", memory_bytes=512 << 20, timeout_s=5)
    assert not r.passed and "MemoryError" in r.stderr


# pass@k ----------------------------------------------------------------------------------------

def brute_force(n, c, k):
    """Share of the k-subsets of n samples (c correct) that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(n, c, k) for n in range(1, 8) for c in range(n + 1) for k in range(1, n + 1)])
def test_pass_at_k_matches_brute_force(n, c, k):
    assert passk.pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    value = passk.pass_at_k(2000, 3, 100)
    exact = 1 - math.comb(1997, 100) / math.comb(2000, 100)
    assert value == pytest.approx(exact, rel=1e-9)
    with pytest.raises(ValueError):
        passk.pass_at_k(5, 6, 1)


# HumanEval -------------------------------------------------------------------------------------

def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_canonical_solutions_pass_and_broken_ones_fail(tmp_path):
    problems = humaneval_problems()
    assert len(problems) == 164
    good = tmp_path / "good.jsonl"
    write_jsonl(good, [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()])
    assert humaneval.score(str(good), ks=(1,)) == {"pass@1": 1.0}
    results = [json.loads(line) for line in open(str(good) + "_results.jsonl")]
    assert len(results) == 164 and all(r["passed"] and r["result"] == "passed" for r in results)

    bad = tmp_path / "bad.jsonl"
    broken = {"return None": "    return None\n", "loop": "    while True:\n        pass\n",
              "syntax": "    return (\n", "escape": "    open('/tmp/../etc/x', 'w')\n"}
    rows = [{"task_id": t, "completion": broken[kind]}
            for t, kind in zip(list(problems)[:24], itertools.cycle(broken))]
    write_jsonl(bad, rows)
    assert humaneval.score(str(bad), ks=(1,), timeout_s=1.0) == {"pass@1": 0.0}


def test_score_command_prints_pass_at_k_json_last(tmp_path):
    problems = humaneval_problems()
    rows = []
    for t in list(problems)[:2]:
        rows += [{"task_id": t, "completion": problems[t]["canonical_solution"]}, {"task_id": t, "completion": "  pass\n"}]
    path = tmp_path / "s.jsonl"
    write_jsonl(path, rows)
    proc = subprocess.run([sys.executable, "-m", "training.eval.humaneval", "score", str(path), "--k", "1,2,10"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"pass@1": 0.5, "pass@2": 1.0}
    assert os.path.exists(str(path) + "_results.jsonl")


def test_truncation_at_codex_stop_sequences():
    assert humaneval.truncate("    return x\n\ndef other():\n    pass") == "    return x\n"
    assert humaneval.truncate("    return x\nif __name__ == '__main__':") == "    return x"


# MTPB ------------------------------------------------------------------------------------------

# Hand-written correct programs for three problems, one string per turn ({...} filled per case).
SOLUTIONS = {
    "1": ['my_string = "{A}"', "my_string = my_string.lower()", "chars = set(my_string)",
          "chars = sorted(chars)", "print(chars)"],
    "2": ["numbers = {numbers}", "total = sum(numbers)", "normalized = [x / total * 100 for x in numbers]",
          "formatted = ['%.1f' % x for x in normalized]", "formatted"],
}


def filled(problem, case, turns):
    """The solution's turns with the case's inputs in place of ``{name}``."""
    out = []
    for turn in turns:
        for name, value in problem["inputs"][case].items():
            turn = turn.replace("{" + name + "}", str(value))
        out.append(turn)
    return out


def test_mtpb_data_is_the_115_problems():
    problems = mtpb_problems()
    assert len(problems) == 115 and sum(len(p["prompts"]) for p in problems.values()) == 514
    assert mtpb.turn_prompts(problems["1"], 1)[0] == 'Assign the string "abcdecadeCADE" to a variable named "my_string".'


def test_mtpb_scores_correct_programs_and_fails_wrong_ones(tmp_path):
    problems = mtpb_problems()
    rows = []
    for pid, turns in SOLUTIONS.items():
        for case in range(5):
            rows.append({"id": pid, "case": case, "turns": filled(problems[pid], case, turns)})
            rows.append({"id": pid, "case": case, "turns": ["x = 1"] * (len(turns) - 1) + ["x"]})
    rows.append({"id": "1", "case": 0, "turns": ["while True: pass"] + [""] * 4})
    path = tmp_path / "s.jsonl"
    write_jsonl(path, rows)
    out = mtpb.score(str(path), timeout_s=3)
    assert out["problems"] == {"1": 5 / 11, "2": 0.5} and out["samples"] == 21
    results = [json.loads(line) for line in open(str(path) + "_results.jsonl")]
    assert [r["passed"] for r in results[:4]] == [True, False, True, False]
    assert results[-1]["result"] == "timed out"


def test_mtpb_single_turn(tmp_path):
    problems = mtpb_problems()
    program = "\n".join(filled(problems["1"], 2, SOLUTIONS["1"]))
    path = tmp_path / "s.jsonl"
    write_jsonl(path, [{"id": "1", "case": 2, "turns": [program]}, {"id": "1", "case": 3, "turns": [program]}])
    out = mtpb.score(str(path), single_turn=True)
    assert out["mode"] == "single_turn" and out["problems"] == {"1": 0.5}


def test_mtpb_rules():
    assert mtpb.truncate("x = 1\nprint(x)\nprint(x)\n") == "x = 1\nprint(x)\n"
    assert mtpb.truncate("y = 2\n# next\nz = 3") == "y = 2\n"
    assert mtpb.truncate("\nif a:\n    r = a\nelse:\n    r = b\n\n\n\n#") == "\nif a:\n    r = a\nelse:\n    r = b"
    assert mtpb.with_final_print("a = 1\na + 1") == "a = 1\nprint(a + 1)"
    assert mtpb.with_final_print("print(3)") == "print(3)"
    program = mtpb.build_program(mtpb_problems()["1"], 0, ["a = 1"] * 5)
    assert program.startswith(mtpb.PREFIX + '# Assign the string "abcde" to a variable named "my_string".\na = 1\n\n')


def test_mtpb_float_tolerance_and_bad_samples(tmp_path):
    problems = mtpb_problems()
    # Problem 2's outputs are strings; compare a float answer through a problem of our own.
    custom = tmp_path / "p.jsonl"
    write_jsonl(custom, [{"id": "1", "prompts": ["Compute."], "inputs": [{}], "outputs": [0.3]}])
    path = tmp_path / "s.jsonl"
    write_jsonl(path, [{"id": "1", "case": 0, "turns": ["0.1 + 0.2"]}, {"id": "1", "case": 0, "turns": ["0.31"]}])
    out = mtpb.score(str(path), data=str(custom))
    assert out["problems"] == {"1": 0.5}
    write_jsonl(path, [{"id": "999", "case": 0, "turns": ["1"]}])
    with pytest.raises(mtpb.UsageError, match="known id"):
        mtpb.score(str(path))
    assert problems  # the real data file stays untouched
