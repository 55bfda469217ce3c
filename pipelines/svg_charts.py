"""Charts as inline SVG for the HTML report: horizontal bars, columns and power-of-two histograms.

Hand-written because the report must be one self-contained file read offline, with no JavaScript
library and no plotting dependency in the pipeline's install; each chart is a few dozen lines of SVG.
"""

from __future__ import annotations

import html
import math


COLORS = ("#3b6fb6", "#e08a2c", "#4a9d5b", "#c4463a", "#8261b4", "#7f7f7f")
WIDTH = 760


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(n) -> str:
    if isinstance(n, float):
        return f"{n:,.1f}"
    return f"{n:,}"


def size_label(low: int, high: int) -> str:
    """A power-of-two bucket by its lower bound: 0, 1, 2, 4, ... 512, 1K, 2K, ... 1M."""
    for unit, step in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if low >= step:
            return f"{low // step}{unit}"
    return str(low)


def bar_chart(chart_id: str, title: str, categories: list, series: dict, unit: str = "",
              log_scale: bool = False, left: int = 230) -> str:
    """Horizontal grouped bars: one row per category, one bar per series (SVG); ``left`` is the
    labels' width."""
    names = list(series)
    bar_h, gap, right = 12, 8, 90
    row_h = bar_h * len(names) + gap
    top = 28 + (18 if len(names) > 1 else 0)
    height = top + row_h * len(categories) + 10
    peak = max([v for values in series.values() for v in values] + [1])
    span = WIDTH - left - right

    def length(v):
        if v <= 0:
            return 0.0
        return span * (math.log10(v + 1) / math.log10(peak + 1) if log_scale else v / peak)

    parts = [f'<svg class="chart" data-chart="{esc(chart_id)}" width="{WIDTH}" height="{height}"'
             f' viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{esc(title)}">',
             f'<text x="0" y="16" class="title">{esc(title)}{" (log scale)" if log_scale else ""}</text>']
    if len(names) > 1:
        for i, name in enumerate(names):
            parts.append(f'<rect x="{left + i * 150}" y="26" width="10" height="10" fill="{COLORS[i % 6]}"/>'
                         f'<text x="{left + i * 150 + 14}" y="35" class="legend">{esc(name)}</text>')
    for row, category in enumerate(categories):
        y0 = top + row * row_h
        parts.append(f'<text x="{left - 6}" y="{y0 + row_h / 2}" class="label" text-anchor="end"'
                     f' dominant-baseline="middle">{esc(category)}</text>')
        for i, name in enumerate(names):
            value = series[name][row]
            y = y0 + i * bar_h
            w = max(length(value), 1.0 if value else 0.0)
            parts.append(f'<rect class="mark" x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 2}"'
                         f' fill="{COLORS[i % 6]}"><title>{esc(category)} · {esc(name)}: {fmt(value)}{unit}'
                         f'</title></rect>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 3}" class="value">{fmt(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart(chart_id: str, title: str, labels: list, series: dict, x_title: str) -> str:
    """Vertical bars over ordered buckets (a histogram), one colour per series."""
    names = list(series)
    left, bottom, top, height = 56, 64, 46, 300
    plot_h = height - top - bottom
    n = max(len(labels), 1)
    slot = (WIDTH - left - 10) / n
    bar_w = min(max((slot - 4) / len(names), 1.0), 48.0)
    # Whole-number ticks (counts): a step of 1, 2, 5 x 10^k giving at most five gridlines.
    top_value = max([v for values in series.values() for v in values] + [1])
    step = next(s * 10 ** k for k in range(0, 19) for s in (1, 2, 5) if s * 10 ** k * 4 >= top_value)
    peak = step * math.ceil(top_value / step)
    ticks = range(0, peak + 1, step)
    parts = [f'<svg class="chart" data-chart="{esc(chart_id)}" width="{WIDTH}" height="{height}"'
             f' viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{esc(title)}">',
             f'<text x="0" y="16" class="title">{esc(title)}</text>']
    for i, name in enumerate(names):
        parts.append(f'<rect x="{left + i * 220}" y="26" width="10" height="10" fill="{COLORS[i % 6]}"/>'
                     f'<text x="{left + i * 220 + 14}" y="35" class="legend">{esc(name)}</text>')
    for value in ticks:
        y = top + plot_h - plot_h * value / peak
        parts.append(f'<line x1="{left}" x2="{WIDTH - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">{fmt(value)}</text>')
    for b, label in enumerate(labels):
        x0 = left + b * slot + (slot - bar_w * len(names)) / 2
        for i, name in enumerate(names):
            value = series[name][b]
            h = plot_h * value / peak
            parts.append(f'<rect class="mark" x="{x0 + i * bar_w:.1f}" y="{top + plot_h - h:.1f}"'
                         f' width="{bar_w - 1:.1f}" height="{max(h, 0):.1f}" fill="{COLORS[i % 6]}">'
                         f'<title>{esc(label)} · {esc(name)}: {fmt(value)}</title></rect>')
        cx = x0 + bar_w * len(names) / 2
        parts.append(f'<text x="{cx:.1f}" y="{top + plot_h + 14}" class="axis" text-anchor="middle">'
                     f'{esc(label)}</text>')
    parts.append(f'<text x="{left + (WIDTH - left) / 2}" y="{height - 4}" class="axis" text-anchor="middle">'
                 f'{esc(x_title)}</text></svg>')
    return "".join(parts)


def histogram_chart(chart_id: str, title: str, named: dict, x_title: str, sizes: bool) -> str | None:
    """Buckets from the manifest's histograms section, aligned across the named series."""
    present = {name: entries for name, entries in named.items() if entries}
    if not present:
        return None
    buckets = sorted({(e["min"], e["max"]) for entries in present.values() for e in entries})
    labels = [size_label(lo, hi) if sizes else (str(lo) if lo == hi else f"{lo}–{hi}") for lo, hi in buckets]
    if sizes:
        x_title += " (each bar: from its label to the next)"
    series = {}
    for name, entries in present.items():
        by_bucket = {(e["min"], e["max"]): e["count"] for e in entries}
        series[name] = [by_bucket.get(b, 0) for b in buckets]
    return column_chart(chart_id, title, labels, series, x_title)
