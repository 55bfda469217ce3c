"""One JSON line from an untrusted input to a Python value, bounded: the manifest and Pile readers.

Python's ``json`` has no depth limit: it recurses once per nested array or object, so a line of
100,000 ``[`` raises RecursionError (or worse, exhausts the C stack in a worker), not the
JSONDecodeError a reader turns into a reject. There is no option to bound it, so the depth is
checked here first, by a scan of the brackets outside strings, and only a line within the bound
is parsed. Every failure is one ValueError ``invalid_json: <detail>``. Kept free of Beam.
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 64  # far above any record Sluice reads (manifest lines and Pile lines nest 2 deep)

# A string (its closing quote optional: an unterminated one runs to the end and json rejects it),
# an opening bracket or a closing one. Strings are skipped whole, so brackets inside them and
# escaped quotes never count; everything else between tokens is skipped by finditer.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|([\[{])|[\]}]', re.DOTALL)


def nesting_depth_exceeds(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects of ``text`` nest deeper than ``limit`` (strings excluded).

    Fast on real lines: a line with at most ``limit`` opening brackets in all cannot exceed it,
    and the scan costs one regular-expression match per string or bracket, not per character.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if match.group(1):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1  # unbalanced input may go negative; json rejects it after the scan
    return False


def load_json_line(text: str, max_depth: int = MAX_DEPTH):
    """The value of one JSON line; ValueError("invalid_json: detail") for anything json refuses,
    a nesting deeper than ``max_depth``, or an integer too long for Python to convert."""
    if nesting_depth_exceeds(text, max_depth):
        raise ValueError(f"invalid_json: nested deeper than {max_depth}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid_json: {err.msg} at column {err.colno}") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"invalid_json: {str(err).splitlines()[0][:200]}") from None
