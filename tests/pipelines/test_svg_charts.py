"""The report's SVG charts: labels escaped, power-of-two buckets named, bars sized by value."""

from __future__ import annotations

import re

from pipelines import svg_charts


def test_size_labels_name_power_of_two_buckets():
    assert [svg_charts.size_label(low, 0) for low in (0, 512, 1024, 3 << 20, 1 << 30)] == ["0", "512", "1K", "3M", "1G"]


def test_bar_chart_escapes_labels_and_sizes_bars_by_value():
    svg = svg_charts.bar_chart("c1", "Rejects <by> reason", ["quality/long_lines", "a&b"],
                               {"documents": [30, 10]})
    assert "&lt;by&gt;" in svg and "a&amp;b" in svg and "<by>" not in svg
    widths = [float(w) for w in re.findall(r'<rect[^>]*width="([0-9.]+)"', svg)]
    bars = [w for w in widths if w > 0][-2:]
    assert abs(bars[0] / bars[1] - 3.0) < 0.05
