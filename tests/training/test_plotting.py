"""The experiments' figures: a PNG that is a picture, an SVG that parses, identical bytes on rerun."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from training.experiments import plotting


def draw(stem):
    fig, ax = plotting.new_figure()
    ax.plot([0, 1, 2], [0.25, 0.5, 0.4], marker="o", label="mean")
    ax.legend()
    return plotting.save(fig, stem)


def test_a_figure_is_a_png_and_an_svg_and_the_same_on_rerun(tmp_path):
    first = draw(str(tmp_path / "a" / "plot"))
    second = draw(str(tmp_path / "b" / "plot"))
    png = open(first["png"], "rb").read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert ET.parse(first["svg"]).getroot().tag.endswith("svg")
    assert open(first["svg"], "rb").read() == open(second["svg"], "rb").read()


def test_mean_and_standard_error():
    mean, se = plotting.mean_and_standard_error([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; sample variance (2.25+0.25+0.25+2.25)/3 = 5/3; SE = sqrt(5/3 / 4) = 0.6455
    assert mean == 2.5 and abs(se - 0.6454972) < 1e-6
    assert plotting.mean_and_standard_error([7.0]) == (7.0, 0.0)
