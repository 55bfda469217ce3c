"""What every Sluice command's driver shares: one-line usage errors, argument types, runner options.

Pipelines take their own flags with argparse and pass every other flag to Beam, as Beam's examples
do. Errors in flags or inputs end the run with one line naming what is wrong (exit status 2).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from transforms.sources import bigquery
from transforms.stats import progress

# Beam's DirectRunner first tries the Prism runner, which downloads a binary; Sluice's local
# default is the Python batch runner (FnApiRunner, what the DirectRunner falls back to), which
# honours --direct_running_mode and --direct_num_workers and never touches the network.
DEFAULT_RUNNER = "FnApiRunner"


class UsageError(Exception):
    """A bad flag or input: reported as one line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UsageErrors: one line, not usage text plus an error line. Flags
    must be spelt in full: an abbreviation (``--min_star``) is not taken for the flag it starts."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(message)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):  # NaN and inf are refused too
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def comma_list(text: str) -> tuple:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError("must name at least one item")
    return items


def _beam_option_parser() -> argparse.ArgumentParser:
    """Every Beam pipeline option, as ``PipelineOptions.get_all_options`` builds them (each direct
    subclass adds its own); Beam only logs an argument it does not know, so Sluice checks here."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's way for an options class to add its flags
    return parser


def _flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions for name in action.option_strings if name.startswith("--")]


def check_beam_args(parser: argparse.ArgumentParser, beam_args: list[str]) -> None:
    """Every argument Sluice's parser left must be a Beam pipeline option: anything else (a
    misspelt or abbreviated flag, a stray value) is a UsageError naming it and the closest flag."""
    beam = _beam_option_parser()
    _, unknown = beam.parse_known_args(beam_args)
    if not unknown:
        return
    hint = _closest_flag_hint(unknown[0], _flag_names(parser) + _flag_names(beam))
    raise UsageError(f"unrecognized argument {unknown[0]}{hint}: neither a flag of {parser.prog} nor a Beam"
                     " pipeline option")


def _closest_flag_hint(argument: str, names: list[str]) -> str:
    name = argument.split("=", 1)[0]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close and name.startswith("-") else ""


def parse_command_args(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """The flags of a command that is not a Beam pipeline (it takes no Beam options): any other
    argument is a UsageError naming it and the closest flag, as for the pipelines."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        hint = _closest_flag_hint(unknown[0], _flag_names(parser))
        raise UsageError(f"unrecognized argument {unknown[0]}{hint}: not a flag of {parser.prog}")
    return args


def parse_pipeline_args(parser: argparse.ArgumentParser, argv) -> tuple[argparse.Namespace, list[str]]:
    """(the pipeline's flags, the Beam options left for the runner); anything else is a UsageError."""
    args, beam_args = parser.parse_known_args(argv)
    check_beam_args(parser, beam_args)
    return args, beam_args


def require_file(path: str, flag: str) -> None:
    if not FileSystems.match([path])[0].metadata_list:
        raise UsageError(f"{flag}: no file matches {path}")


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options from the remaining flags, with Sluice's offline local runner by default."""
    options = PipelineOptions(beam_args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = DEFAULT_RUNNER
    return options


class DryRun(Exception):
    """--dry_run=True: the graph translated for the runner; nothing ran, nothing is published."""

    def __init__(self, result):
        super().__init__("dry run")
        self.result = result


class Submitted(Exception):
    """The job was submitted (submit mode); the launcher exits, the finalize step publishes."""

    def __init__(self, job_id: str):
        super().__init__(job_id)
        self.job_id = job_id


def exit_status(status) -> int:
    """An int that a command's ``main`` returns is its exit status (``datasets verify``'s 1)."""
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def run_main(main, argv=None, **context) -> int:
    """Run ``main(argv, **context)``; a UsageError or a bad flag becomes one line on stderr and exit
    status 2. Local runs started from the command line print their progress (transforms/stats/progress.py).
    A dry run (Beam's --dry_run, or --bigquery_dry_run_only's estimate) prints one line and exits 0.
    """
    logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault(progress.ENV, progress.DEFAULT_INTERVAL_S)
    try:
        return exit_status(main(argv, **context))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except bigquery.DryRunOnly as estimate:
        print(estimate.line())
    except DryRun as dry:
        job = getattr(dry.result, "job", None)
        transforms = len(job.proto_pipeline.components.transforms) if job is not None else 0
        print(f"dry run: the graph translated ({transforms} transforms); nothing was submitted or published")
    except Submitted as submitted:
        print(f"submitted job {submitted.job_id}; publish it with the finalize step once it succeeds")
    return 0
