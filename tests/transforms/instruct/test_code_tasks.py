"""Code tasks: Python functions with docstrings, docstring removed from the code, skips counted."""

from transforms.instruct.code_tasks import python_functions

SOURCE = '''
import os


def join_all(parts,
             sep=","):
    """Join the parts with a separator, skipping empty ones."""
    return sep.join(p for p in parts if p)


class Store:
    @property
    def size(self):
        """
        The number of items held,
        counted lazily.
        """
        total = len(self._items)
        return total

    def flag(self): "inline docstring here"; return 1

    def tiny(self):
        """Too short."""
        return 0


def undocumented():
    return os.sep
'''


def test_functions_with_docstrings_become_records():
    out = list(python_functions("octo/repo:pkg/mod.py", "pkg/mod.py", SOURCE))
    kept = {fid: rec for outcome, fid, rec in out if outcome == "kept"}
    assert set(kept) == {"octo/repo:pkg/mod.py:join_all:5", "octo/repo:pkg/mod.py:Store.size:13"}
    join = kept["octo/repo:pkg/mod.py:join_all:5"]
    assert join["signature"] == 'def join_all(parts,\n             sep=","):'
    assert join["docstring"] == "Join the parts with a separator, skipping empty ones."
    assert join["code"] == 'def join_all(parts,\n             sep=","):\n    return sep.join(p for p in parts if p)'
    size = kept["octo/repo:pkg/mod.py:Store.size:13"]
    assert size["qualname"] == "Store.size" and size["docstring"] == "The number of items held,\ncounted lazily."
    assert size["code"] == "def size(self):\n    total = len(self._items)\n    return total"
    assert "docstring" not in size["code"] and '"""' not in size["code"]
    skipped = {fid.split(":")[2]: outcome for outcome, fid, _ in out if outcome != "kept"}
    assert skipped == {"Store.flag": "docstring_inline", "Store.tiny": "docstring_too_short"}


def test_unparsable_source_is_counted():
    assert list(python_functions("d", "x.py", "def broken(:\n")) == [("unparsable", "d", None)]
