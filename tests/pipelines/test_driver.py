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


def pipeline_parser():
    parser = driver.ArgumentParser(prog="sluice mono")
    parser.add_argument("--min_stars", type=driver.non_negative_int, default=0)
    parser.add_argument("--max_file_bytes", type=driver.positive_int, default=1 << 20)
    return parser


def test_beam_options_pass_and_anything_else_is_a_usage_error_naming_the_closest_flag():
    args, beam_args = driver.parse_pipeline_args(pipeline_parser(), [
        "--min_stars", "5", "--runner=DataflowRunner", "--project", "p", "--region=us-central1",
        "--direct_num_workers=2", "--no_auth", "--setup_file", "./setup.py"])
    assert args.min_stars == 5
    assert beam_args == ["--runner=DataflowRunner", "--project", "p", "--region=us-central1",
                         "--direct_num_workers=2", "--no_auth", "--setup_file", "./setup.py"]
    for argv, named, closest in ((["--min_stras", "5"], "--min_stras", "--min_stars"),
                                 (["--max_file_byte=9"], "--max_file_byte=9", "--max_file_bytes"),
                                 (["--runer=DirectRunner"], "--runer=DirectRunner", "--runner")):
        with pytest.raises(driver.UsageError, match=f"^unrecognized argument {named} \\(did you mean {closest}\\?\\)"):
            driver.parse_pipeline_args(pipeline_parser(), argv)
    with pytest.raises(driver.UsageError, match="^unrecognized argument stray: neither a flag of sluice mono"):
        driver.parse_pipeline_args(pipeline_parser(), ["stray"])


def test_an_abbreviated_flag_is_not_taken_for_the_flag_it_starts():
    """--min_star 100000 once read as --min_stars and published an empty version."""
    with pytest.raises(driver.UsageError, match=r"unrecognized argument --min_star \(did you mean --min_stars\?\)"):
        driver.parse_pipeline_args(pipeline_parser(), ["--min_star", "100000"])


def test_a_misspelt_flag_stops_the_pipeline_before_any_work(tmp_path, capsys, sample_manifest):
    from pipelines import mono

    status = mono.run(["--input", str(sample_manifest), "--output", str(tmp_path / "mono" / "v1"),
                       "--tokenizer", str(tmp_path / "t.model"), "--min_stras", "5"])
    assert status == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: unrecognized argument --min_stras (did you mean --min_stars?): neither a flag of sluice mono"
        " nor a Beam pipeline option"]
    assert not (tmp_path / "mono").exists()
