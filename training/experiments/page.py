"""One static HTML page showing every experiment's report: its title, summary, tables and figures.

    python -m training.experiments.page OUT   # rebuild OUT/index.html from OUT/*/report.json

``write(out_dir, reports)`` writes ``OUT_DIR/index.html``: per experiment (in the given order) its
title, summary paragraph, each table as an HTML table and each figure as its PNG (a relative link,
with the SVG linked beside it), and a link to its results.json. All text is escaped; no script.
"""

from __future__ import annotations

import glob
import html
import json
import os
import sys

from training.cli import UsageError, run_main
from training.experiments import common

INDEX = "index.html"
STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.25em .6em;"
         "text-align:right}th{background:#eee}td:first-child,th:first-child{text-align:left}"
         "figure{margin:1em 0}img{max-width:100%}section{border-top:2px solid #ddd;margin-top:2em}")


def cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return html.escape("" if value is None else str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def link(out_dir: str, path: str) -> str:
    """``path`` relative to the page, URL-quoted and escaped for an attribute."""
    from urllib.parse import quote

    return html.escape(quote(os.path.relpath(path, out_dir).replace(os.sep, "/")), quote=True)


def table_html(table: dict) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"])
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>\n" for row in table["rows"])
    return (f"<table>\n<caption>{html.escape(table['caption'])}</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}</tbody>\n</table>\n")


def figure_html(out_dir: str, fig: dict) -> str:
    caption = html.escape(fig["caption"])
    return (f"<figure><img src=\"{link(out_dir, fig['png'])}\" alt=\"{html.escape(fig['caption'], quote=True)}\">"
            f"<figcaption>{caption} (<a href=\"{link(out_dir, fig['svg'])}\">SVG</a>)</figcaption></figure>\n")


def section_html(out_dir: str, rep: dict) -> str:
    parts = [f"<section id=\"{html.escape(rep['name'], quote=True)}\">\n<h2>{html.escape(rep['title'])}</h2>\n",
             f"<p>{html.escape(rep['summary'])}</p>\n"]
    parts += [table_html(t) for t in rep["tables"]]
    parts += [figure_html(out_dir, f) for f in rep["figures"]]
    parts.append(f"<p><a href=\"{link(out_dir, rep['results'])}\">results.json</a></p>\n</section>\n")
    return "".join(parts)


def write(out_dir: str, reports: list, title: str = "Sluice experiments") -> str:
    """Write ``OUT_DIR/index.html`` showing ``reports`` (the experiments' run() dicts); its path."""
    contents = "".join(f"<li><a href=\"#{html.escape(r['name'], quote=True)}\">{html.escape(r['title'])}</a></li>"
                       for r in reports)
    page = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}"
            f"</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n<ul>{contents}</ul>\n"
            + "".join(section_html(out_dir, r) for r in reports) + "</body>\n</html>\n")
    path = os.path.join(out_dir, INDEX)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path


def read_reports(out_dir: str) -> list:
    """The reports under ``OUT_DIR/*/report.json``, by folder name."""
    paths = sorted(glob.glob(os.path.join(out_dir, "*", common.REPORT)))
    if not paths:
        raise UsageError(f"{out_dir}: no */{common.REPORT}; run the experiments first (make experiments)")
    reports = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            reports.append(json.load(handle))
    return reports


def main(argv=None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        raise UsageError("usage: python -m training.experiments.page OUT_DIR")
    path = write(argv[0], read_reports(argv[0]))
    print(path)
    return path


if __name__ == "__main__":
    sys.exit(run_main(main))
