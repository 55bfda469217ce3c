"""The bounded JSON line loader: nesting checked before parsing, every failure one invalid_json."""

from __future__ import annotations

import json

import pytest

from schemas.json_lines import MAX_DEPTH, load_json_line, nesting_depth_exceeds


def nested(depth: int, open_="[", close="]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize("text", [nested(100_000), nested(100_000, "{\"a\":", "}"), "[" * 100_000,
                                  '{"a": ' + nested(MAX_DEPTH) + "}"])
def test_deep_lines_are_invalid_json_not_recursion_errors(text):
    with pytest.raises(ValueError) as err:
        load_json_line(text)
    assert str(err.value) == f"invalid_json: nested deeper than {MAX_DEPTH}"


@pytest.mark.parametrize("text", [nested(MAX_DEPTH), '{"a": ' + nested(MAX_DEPTH - 1) + "}"])
def test_lines_at_the_bound_parse(text):
    assert load_json_line(text) == json.loads(text)


@pytest.mark.parametrize("text", [
    json.dumps({"text": "[" * 10_000 + "{" * 10_000, "meta": {"pile_set_name": "Github"}}),
    json.dumps({"text": '\\"[[[[' * 5_000}),  # escaped quotes and backslashes inside the string
    json.dumps(["]" * 100] + [[[]]]),
])
def test_brackets_inside_strings_do_not_count(text):
    assert not nesting_depth_exceeds(text)
    assert load_json_line(text) == json.loads(text)


@pytest.mark.parametrize("text, detail", [
    ('{"a": 1', "invalid_json: Expecting ',' delimiter at column 8"),
    ("", "invalid_json: Expecting value at column 1"),
    ('"unterminated ' + "[" * 100, "invalid_json: Unterminated string starting at"),
])
def test_json_errors_name_the_column(text, detail):
    with pytest.raises(ValueError) as err:
        load_json_line(text)
    assert str(err.value).startswith(detail)


def test_an_integer_too_long_to_convert_is_invalid_json():
    with pytest.raises(ValueError) as err:
        load_json_line('{"stars": ' + "9" * 5000 + "}")
    assert str(err.value).startswith("invalid_json: Exceeds the limit")
