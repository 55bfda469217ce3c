"""Figures of the experiments: one way to draw and save them (matplotlib, no display needed).

Every figure is saved twice, PNG for the HTML page and the README, SVG for papers and diffs, with
matplotlib's metadata date removed and its element ids salted with a constant, so the same
numbers give the same SVG bytes.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # no display on CI, laptops over SSH or GPU nodes

import matplotlib.pyplot as plt  # noqa: E402

SVG_METADATA = {"Date": None}  # no creation date: reruns give identical files
PNG_METADATA = {"Software": None}
DPI = 120


def new_figure(width: float = 6.4, height: float = 4.0):
    """(figure, axes) with the grid and layout every experiment's plot shares."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.grid(True, alpha=0.3)
    return fig, ax


def save(fig, stem: str) -> dict:
    """Write ``stem.png`` and ``stem.svg`` and close the figure: ``{"png": path, "svg": path}``."""
    folder = os.path.dirname(stem)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fig.tight_layout()
    paths = {"png": f"{stem}.png", "svg": f"{stem}.svg"}
    fig.savefig(paths["png"], dpi=DPI, metadata=PNG_METADATA)
    with matplotlib.rc_context({"svg.hashsalt": "sluice"}):  # clip-path ids from a fixed salt, not random
        fig.savefig(paths["svg"], metadata=SVG_METADATA)
    plt.close(fig)
    return paths


def mean_and_standard_error(values) -> tuple[float, float]:
    """(mean, standard error of the mean) of a list of numbers; SE is 0 for fewer than two."""
    import math

    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)
