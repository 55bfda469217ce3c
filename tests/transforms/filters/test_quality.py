"""Code-quality rules: decisions on the real Python files of the sample archives, one crafted case
per rule, and every threshold flipping its decision when changed."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Document
from transforms.sources.archive_reader import decode_source
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.filters.quality import FilterCodeQuality, QualityThresholds, check_quality

ARCHIVES = Path(__file__).resolve().parents[3] / "samples" / "mono" / "archives"
DEFAULT = QualityThresholds()


@pytest.fixture(scope="module")
def real_python_files() -> dict[str, str]:
    """{"<archive>:<path>": text} of every UTF-8 .py file in the sample archives."""
    files = {}
    for archive in sorted(ARCHIVES.glob("*.tar.gz")):
        for member in iter_members(str(archive), ArchiveLimits(), want=lambda p: p.endswith(".py")):
            text, reason = decode_source(member.data)
            assert reason is None
            files[f"{archive.name}:{member.path}"] = text
    assert len(files) > 400
    return files


def test_real_source_files_mostly_pass(real_python_files):
    verdicts = {name: check_quality(text, DEFAULT) for name, text in real_python_files.items()}
    reasons = collections.Counter(v[0] if v else "pass" for v in verdicts.values())
    nonempty = [n for n, t in real_python_files.items() if t.strip()]
    assert reasons["pass"] >= 0.95 * len(nonempty)
    # Every empty file (__init__.py placeholders) and only those are "empty".
    assert {n for n, v in verdicts.items() if v and v[0] == "empty"} == {
        n for n, t in real_python_files.items() if not t.strip()}
    assert reasons["empty"] >= 5
    # idna's Unicode tables say "automatically generated" in their first lines.
    for name in ("idna-3.7.tar.gz:idna/idnadata.py", "idna-3.7.tar.gz:idna/uts46data.py"):
        assert verdicts[name] == ("generated", "automatically generated")
    # Core hand-written modules pass.
    for name in ("six-1.16.0.tar.gz:six.py", "requests-2.32.3.tar.gz:src/requests/sessions.py",
                 "click-8.1.7.tar.gz:src/click/core.py", "tomli-2.0.1.tar.gz:src/tomli/_parser.py"):
        assert verdicts[name] is None, name


def test_real_file_breaks_rules_when_thresholds_tighten(real_python_files):
    text = real_python_files["six-1.16.0.tar.gz:six.py"]
    lines = text.splitlines()
    longest = max(map(len, lines))
    average = sum(map(len, lines)) / len(lines)
    assert check_quality(text, dataclasses.replace(DEFAULT, max_line_length=longest)) is None
    assert check_quality(text, dataclasses.replace(DEFAULT, max_line_length=longest - 1)) == (
        "max_line_length", str(longest))
    assert check_quality(text, dataclasses.replace(DEFAULT, max_avg_line_length=average - 0.01)) == (
        "avg_line_length", f"{average:.1f}")


@pytest.mark.parametrize("text", ["", " ", "\n\n\n", " \t\r\n \x0c ", "\u00a0\u2003\n"])
def test_empty(text):
    assert check_quality(text, DEFAULT) == ("empty", "")


def test_max_line_length():
    text = "x = 1\n" * 50 + "s = '" + "z" * 1100 + "'\n"
    assert check_quality(text, DEFAULT) == ("max_line_length", "1106")
    assert check_quality(text, dataclasses.replace(DEFAULT, max_line_length=1106)) is None
    assert check_quality(text, dataclasses.replace(DEFAULT, max_line_length=1105))[0] == "max_line_length"


def test_avg_line_length():
    text = ("y = '" + "z" * 115 + "'\n") * 10  # 121 characters a line, none over 1000
    assert check_quality(text, DEFAULT) == ("avg_line_length", "121.0")
    assert check_quality(text, dataclasses.replace(DEFAULT, max_avg_line_length=121)) is None
    assert check_quality(text + "\n" * 3, DEFAULT) is None  # three empty lines bring it to 93.1


def test_digit_fraction_hex_data_file():
    # A blob embedded as hex strings: 64 hex digits and 3 other characters a line.
    rows = ['    "' + hashlib.sha256(str(i).encode()).hexdigest() + '",' for i in range(200)]
    text = "BLOB = (\n" + "\n".join(rows) + "\n)\n"
    verdict = check_quality(text, DEFAULT)
    assert verdict[0] == "digit_fraction" and float(verdict[1]) > 0.9
    assert check_quality(text, dataclasses.replace(DEFAULT, max_digit_fraction=1.0)) is None
    decimal = "\n".join(" ".join(str(i * 7919 + j) for j in range(10)) for i in range(100))
    assert check_quality(decimal, DEFAULT) == ("digit_fraction", "1.000")
    # Ordinary code with some numbers stays well below.
    # Ordinary code stays well below, although a-f count as hex digits: 24 of 50 characters here.
    code = "def f(x):\n    return x * 1024 + 0xFF\n"
    assert check_quality(code, DEFAULT) is None
    assert check_quality(code, dataclasses.replace(DEFAULT, max_digit_fraction=0.48)) is None
    assert check_quality(code, dataclasses.replace(DEFAULT, max_digit_fraction=0.47)) == (
        "digit_fraction", "0.480")


@pytest.mark.parametrize(
    "header, marker",
    [
        ("# Code generated by protoc-gen-go. DO NOT EDIT.", "do not edit"),
        ("# -*- coding: utf-8 -*-\n# Generated by Django 4.2 on 2023-05-01", "generated by django"),
        ("# AUTO-GENERATED FILE", "auto-generated"),
        ("// This file is autogenerated.", "autogenerated"),
        ('"""This module was automatically generated."""', "automatically generated"),
        ("# Do Not Edit", "do not edit"),
    ],
)
def test_generated_header(header, marker):
    text = header + "\n\nimport os\n\n\ndef main():\n    return os.getcwd()\n"
    assert check_quality(text, DEFAULT) == ("generated", marker)
    # Only the first generated_scan_lines lines are searched.
    pushed_down = "\n" * DEFAULT.generated_scan_lines + text
    assert check_quality(pushed_down, DEFAULT) is None
    assert check_quality(pushed_down, dataclasses.replace(
        DEFAULT, generated_scan_lines=DEFAULT.generated_scan_lines + header.count("\n") + 1)) == (
        "generated", marker)
    assert check_quality(text, dataclasses.replace(DEFAULT, generated_markers=())) is None


def test_rules_apply_in_order():
    # Empty beats everything; line length is checked before the digit and generated rules.
    text = "# this file was generated by hand\n" + "0" * 2000 + "\n"
    assert check_quality(text, DEFAULT)[0] == "max_line_length"
    relaxed = dataclasses.replace(DEFAULT, max_line_length=5000, max_avg_line_length=5000)
    assert check_quality(text, relaxed)[0] == "digit_fraction"
    relaxed = dataclasses.replace(relaxed, max_digit_fraction=1.0)
    assert check_quality(text, relaxed) == ("generated", "this file was generated")


def _doc(i: int, text: str) -> Document:
    return Document(id=f"o/r:f{i}.py", repo_name="o/r", path=f"f{i}.py", text=text,
                    sha256=hashlib.sha256(text.encode()).hexdigest(), stars=None, license=None,
                    license_source=None, license_confidence=None, ref=None)


def test_filter_code_quality_pipeline(real_python_files, beam_helpers):
    new_pipeline, run, counters = beam_helpers
    texts = [real_python_files["six-1.16.0.tar.gz:six.py"],
             real_python_files["idna-3.7.tar.gz:idna/idnadata.py"],
             "", "q" * 1001 + "\n", "print('ok')\n"]
    docs = [_doc(i, t) for i, t in enumerate(texts)]
    p = new_pipeline()
    kept, rejects = p | beam.Create(docs) | FilterCodeQuality()
    assert_that(kept, equal_to([docs[0], docs[4]]), label="kept")
    assert_that(rejects | beam.Map(lambda r: (r.id, r.stage, r.reason)),
                equal_to([("o/r:f1.py", "quality", "generated"), ("o/r:f2.py", "quality", "empty"),
                          ("o/r:f3.py", "quality", "max_line_length")]), label="rejects")
    # A custom threshold travels with the transform.
    kept_loose, _ = (p | "Loose" >> beam.Create(docs[3:4])
                     | "LooseQuality" >> FilterCodeQuality(QualityThresholds(max_line_length=2000,
                                                                             max_avg_line_length=2000)))
    assert_that(kept_loose, equal_to([docs[3]]), label="loose")
    result = run(p)
    assert counters(result, "quality") == {"kept": 3, "generated": 1, "empty": 1, "max_line_length": 1}


def test_generated_by_in_a_docstring_is_not_a_generated_file():
    """Jinja's nodes.py says "AST nodes generated by the parser": hand-written code."""
    text = '"""\n    jinja2.nodes\n    AST nodes generated by the parser.\n"""\nimport os\n'
    assert check_quality(text, DEFAULT) is None
