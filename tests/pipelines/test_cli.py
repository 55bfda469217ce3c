"""`sluice NAME` is `python -m pipelines.NAME`."""

from __future__ import annotations

import subprocess
import sys

from pipelines import cli


def test_lists_pipelines(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert "mono" in out and "tokenizer" in out and "nl" in out


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


def test_nl_subcommand_reports_a_missing_input(tmp_path):
    argv = ["nl", "--input", str(tmp_path / "missing-*.jsonl.zst"), "--output", str(tmp_path / "o"),
            "--tokenizer", str(tmp_path / "t.model")]
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *argv], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --input: no file matches")


def test_multi_subcommand_reports_a_missing_snapshot_table(tmp_path, sample_tokenizer):
    argv = ["multi", "--bigquery_snapshot", str(tmp_path), "--output", str(tmp_path / "o"),
            "--tokenizer", str(sample_tokenizer)]
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *argv], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --bigquery_snapshot:")
    assert "contents.parquet" in done.stderr
