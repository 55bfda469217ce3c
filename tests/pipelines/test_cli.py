"""`sluice NAME` is `python -m pipelines.NAME`."""

from __future__ import annotations

import subprocess
import sys

from pipelines import cli


def test_lists_pipelines(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "mono" in out and "tokenizer" in out


def test_unknown_pipeline_is_an_error(capsys):
    assert cli.main(["nope"]) == 2
    assert "unknown pipeline 'nope'" in capsys.readouterr().err


def test_subcommand_runs_the_pipeline_module(tmp_path):
    """The same one-line error from both entry points shows they run the same code."""
    argv = ["--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o"),
            "--tokenizer", str(tmp_path / "t.model")]
    via_cli = subprocess.run([sys.executable, "-m", "pipelines.cli", "mono", *argv],
                             capture_output=True, text=True)
    via_module = subprocess.run([sys.executable, "-m", "pipelines.mono", *argv],
                                capture_output=True, text=True)
    assert via_cli.returncode == via_module.returncode == 2
    last = lambda err: err.strip().splitlines()[-1]  # noqa: E731
    assert last(via_cli.stderr) == last(via_module.stderr)
    assert last(via_cli.stderr).startswith("error: --input: no file matches")
