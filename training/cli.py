"""What every training command line shares: one-line usage errors (exit status 2), never a traceback.

``training/`` cannot use ``pipelines.driver`` (GPU images carry no Beam), so it keeps its own small copy
of the same contract.
"""

from __future__ import annotations

import argparse
import json
import sys


class UsageError(Exception):
    """A bad flag or input: one line on stderr, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UsageErrors: one line, not usage text plus an error line."""

    def error(self, message):
        raise UsageError(message)


def run_main(main, argv=None, errors: tuple = ()) -> int:
    """Run ``main(argv)``; a UsageError, an unreadable file or bad JSON (plus ``errors``) is one line, exit 2."""
    try:
        main(argv)
    except (UsageError, OSError, json.JSONDecodeError, *errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
