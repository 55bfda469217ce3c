"""``sluice report``: the charts come from the manifest, and every chart draws in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import zstandard

from pipelines import nl, report
from schemas import dataset_version as dv
from transforms.stats import histograms

CHARTS = ("sets-documents", "sets-bytes", "funnel", "rejects", "document-lengths", "cluster-sizes", "packing")


@pytest.fixture(scope="module")
def version(nl_files, nl_tokenizer, tmp_path_factory):
    """An NL version from the real samples plus near-duplicate copies (one word changed) of a few
    documents, so every chart has data: sets, rejects, lengths, clusters and packing."""
    folder = tmp_path_factory.mktemp("report_input")
    lines = zstandard.ZstdDecompressor().stream_reader(open(nl_files[0], "rb")).read().splitlines()
    records = [json.loads(line) for line in lines[:120]]
    copies = []
    for record in records[:6]:
        words = record["text"].split(" ")
        if len(words) < 60:
            continue
        for n in (1, 2):
            edited = words[:]
            edited[len(words) // 2] = f"edited{n}"
            copies.append({**record, "text": " ".join(edited)})
    assert len(copies) >= 4
    (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records + copies))
    out = tmp_path_factory.mktemp("reports") / "nl" / "v1"
    manifest = nl.main(["--input", str(folder / "part.jsonl"), "--output", str(out), "--tokenizer",
                        str(nl_tokenizer), "--num_shards", "2", "--seq_len", "512", "--near_dedup",
                        "--pack_tail", "pad"])
    return out, manifest


def test_histograms_agree_with_the_stage_counts(version):
    _, manifest = version
    hist, counts = manifest["histograms"], manifest["counts"]
    assert sum(b["count"] for b in hist[histograms.DOCUMENT_BYTES_READ]) == counts["read"]["kept"]
    assert sum(b["count"] for b in hist[histograms.DOCUMENT_BYTES_KEPT]) == counts["tokenize"]["kept"]
    clusters = hist[histograms.NEAR_DUPLICATE_CLUSTER_SIZE]
    assert sum(b["count"] for b in clusters) == manifest["near_dedup"]["components"] > 0
    # each cluster keeps one document: removed = sum over clusters of (size - 1), within the buckets
    assert sum((b["min"] - 1) * b["count"] for b in clusters) <= manifest["near_dedup"]["removed"] \
        <= sum((b["max"] - 1) * b["count"] for b in clusters)


def test_report_is_self_contained_and_holds_every_chart(version, tmp_path):
    out, manifest = version
    target = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", str(out), "--output", str(target)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page = target.read_text()
    assert re.findall(r'data-chart="([^"]+)"', page) == list(CHARTS)
    assert not re.search(r"""(src|href)\s*=|https?://(?!www\.w3\.org)|@import""", page)
    funnel = re.search(r'data-chart="funnel".*?</svg>', page).group(0)
    assert f"read · kept: {manifest['counts']['read']['kept']:,}" in funnel
    assert f"tokenize · kept: {manifest['counts']['tokenize']['kept']:,}" in funnel


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_every_chart_draws_in_headless_chromium(version, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it where apt is)")
    out, _ = version
    target = tmp_path / "r.html"
    assert report.run([str(out), "--output", str(target)]) == 0
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", target.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    status = re.search(r'<pre id="chart-status"[^>]*>([^<]*)</pre>', dom)
    assert status, dom[-2000:]
    assert status.group(1).split() == [f"{chart}=yes" for chart in CHARTS]
    shot = tmp_path / "r.png"
    subprocess.run([browser, *flags, "--window-size=820,3600", f"--screenshot={shot}", target.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_a_missing_version_is_one_line(tmp_path, capsys):
    assert report.run([str(tmp_path / "nl" / "v9")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a published version" in err[0]


def test_an_invalid_manifest_is_one_line(tmp_path, capsys):
    folder = tmp_path / "nl" / "v1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text('{"shards": [' * 1000)
    assert report.run([str(folder), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {folder}: invalid manifest (nested deeper than 64)"]
    assert not (tmp_path / "r.html").exists()


def test_a_tokenizer_version_reports_without_shards(sample_tokenizer, tmp_path):
    """A tokenizer version has counts but no shards or histograms: the report says so, still valid."""
    manifest = dv.read_manifest(str(sample_tokenizer.parent))
    page = report.render(manifest)
    assert "No shards (a tokenizer version)." in page and "No length histogram" in page
    assert re.findall(r'data-chart="([^"]+)"', page) == ["funnel", "rejects"]
