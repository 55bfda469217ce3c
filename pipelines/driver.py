"""What every Sluice command's driver shares: one-line usage errors, argument types, runner options.

Pipelines take their own flags with argparse and pass every other flag to Beam, as Beam's examples
do. Errors in flags or inputs end the run with one line naming what is wrong (exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from transforms.stats import progress

# Beam's DirectRunner first tries the Prism runner, which downloads a binary; Sluice's local
# default is the Python batch runner (FnApiRunner, what the DirectRunner falls back to), which
# honours --direct_running_mode and --direct_num_workers and never touches the network.
DEFAULT_RUNNER = "FnApiRunner"


class UsageError(Exception):
    """A bad flag or input: reported as one line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UsageErrors: one line, not usage text plus an error line."""

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


def comma_list(text: str) -> tuple:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError("must name at least one item")
    return items


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
    """
    logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault(progress.ENV, progress.DEFAULT_INTERVAL_S)
    try:
        return exit_status(main(argv, **context))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DryRun as dry:
        job = getattr(dry.result, "job", None)
        transforms = len(job.proto_pipeline.components.transforms) if job is not None else 0
        print(f"dry run: the graph translated ({transforms} transforms); nothing was submitted or published")
    except Submitted as submitted:
        print(f"submitted job {submitted.job_id}; publish it with the finalize step once it succeeds")
    return 0
