"""The driver's shared parts: one-line usage errors, argument types, runner options, exit statuses."""

from __future__ import annotations

import argparse

import pytest

from pipelines import driver


def test_parser_errors_are_one_line_usage_errors():
    parser = driver.ArgumentParser(prog="sluice x")
    parser.add_argument("--n", type=driver.positive_int, required=True)
    with pytest.raises(driver.UsageError, match="--n"):
        parser.parse_args([])
    with pytest.raises(driver.UsageError, match="must be a positive integer, got 0"):
        parser.parse_args(["--n", "0"])


@pytest.mark.parametrize("kind, text, ok", [
    (driver.positive_int, "3", 3), (driver.positive_int, "-1", None),
    (driver.non_negative_int, "0", 0), (driver.non_negative_int, "-1", None),
    (driver.comma_list, " a, b ,,c ", ("a", "b", "c")), (driver.comma_list, " , ", None),
])
def test_argument_types(kind, text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)
    else:
        assert kind(text) == ok


def test_require_file_names_the_flag(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    driver.require_file(str(tmp_path / "*.jsonl"), "--input")
    with pytest.raises(driver.UsageError, match=r"^--input: no file matches .*missing"):
        driver.require_file(str(tmp_path / "missing"), "--input")


def test_pipeline_options_default_to_the_offline_runner_and_keep_a_chosen_one():
    from apache_beam.options.pipeline_options import StandardOptions

    assert driver.pipeline_options([]).view_as(StandardOptions).runner == driver.DEFAULT_RUNNER
    chosen = driver.pipeline_options(["--runner=DirectRunner"])
    assert chosen.view_as(StandardOptions).runner == "DirectRunner"


def test_run_main_turns_outcomes_into_exit_statuses_and_one_line(capsys):
    def fails(argv):
        raise driver.UsageError(f"--input: bad {argv[0]}")

    assert driver.run_main(fails, ["x"]) == 2
    assert capsys.readouterr().err == "error: --input: bad x\n"
    assert driver.run_main(lambda argv: 1, []) == 1  # datasets verify's failure status
    assert driver.run_main(lambda argv: True, []) == 0  # a bool is no status
    assert driver.run_main(lambda argv, mode: {"mode": mode}, [], mode="submit") == 0  # context reaches main


def test_run_main_reports_a_dry_run_and_a_submitted_job(capsys):
    def dry(argv):
        raise driver.DryRun(result=None)

    def submitted(argv):
        raise driver.Submitted("2026-12-07_00_00_00-1")

    assert driver.run_main(dry, []) == 0
    assert capsys.readouterr().out == "dry run: the graph translated (0 transforms); nothing was submitted or published\n"
    assert driver.run_main(submitted, []) == 0
    assert "submitted job 2026-12-07_00_00_00-1;" in capsys.readouterr().out
