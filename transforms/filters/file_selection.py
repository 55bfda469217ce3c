"""File selection: keep source files by extension (``.py`` for Mono; configurable)."""

from __future__ import annotations

from transforms.stats.counting import CountedFilter

STAGE = "select"


class _ExtensionCheck:
    def __init__(self, extensions):
        self.extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)

    def __call__(self, doc):
        if doc.path.lower().endswith(self.extensions):
            return None
        name = doc.path.rsplit("/", 1)[-1]
        extension = "." + name.rsplit(".", 1)[-1].lower() if "." in name else "(none)"
        return "extension_not_selected", extension


def SelectFiles(extensions=(".py",)) -> CountedFilter:  # noqa: N802 (a PTransform factory)
    """``(documents, rejects)`` keeping files whose name ends with one of ``extensions``."""
    return CountedFilter(STAGE, _ExtensionCheck(extensions))
