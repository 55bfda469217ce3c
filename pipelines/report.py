"""A self-contained HTML report of one dataset version: ``sluice report ROOT/DATASET/VERSION``.

    sluice report ROOT/DATASET/VERSION [--output FILE]   (default: DATASET-VERSION.html here)

Charts, drawn as inline SVG by this module from the manifest alone (no network, no JavaScript
library, nothing read but ``manifest.json``): documents and tokens per source (NL sets, Multi
languages), rejects per stage and reason, the stage funnel, document lengths before and after
filtering, near-duplicate cluster sizes and packing efficiency per shard; for instruction mixtures,
the mixture's realised task proportions against FLAN's capped rates, and for an ``--all_holdouts``
version (``ROOT/instruct/VERSION``) the examples of every split and each split's proportions (a
split's folder, ``VERSION/holdout-<cluster>``, gets the full report of its own). The version folder is
immutable, so the report is written elsewhere. A small inline script marks each chart drawn
once the browser has laid it out (the tests read that back from headless Chromium).
"""

from __future__ import annotations

import os

from pipelines import datasets, summary
from pipelines.driver import ArgumentParser, run_main
from pipelines.manifests import NOT_REJECTS, REPOSITORY_STAGES, stages_in_order
from pipelines.svg_charts import bar_chart, esc, fmt, histogram_chart
from transforms.stats import histograms


def _read_kept(groups: dict, names: list, measure: str) -> dict:
    """``{"read": [...], "kept": [...]}`` of one measure over the named sets or languages."""
    return {stage: [groups[name][stage][measure] for name in names] for stage in ("read", "kept")}


def source_charts(manifest: dict) -> list[tuple[str, str]]:
    """(heading, svg) per source breakdown the manifest has: NL sets, Multi languages."""
    out = []
    if manifest.get("sets"):
        sets = manifest["sets"]
        names = sorted(sets, key=lambda s: -sets[s]["read"]["documents"])
        out.append(("Documents per Pile set", bar_chart(
            "sets-documents", "Documents per Pile set", names, _read_kept(sets, names, "documents"))))
        out.append(("UTF-8 bytes per Pile set", bar_chart(
            "sets-bytes", "UTF-8 bytes per Pile set", names, _read_kept(sets, names, "bytes"), unit=" bytes")))
    if manifest.get("languages"):
        langs = manifest["languages"]
        names = sorted(langs, key=lambda s: -langs[s]["read"]["documents"])
        out.append(("Documents per language", bar_chart(
            "languages-documents", "Documents per language", names, _read_kept(langs, names, "documents"))))
        out.append(("Tokens per language", bar_chart(
            "languages-tokens", "Tokens kept per language", names,
            {"tokens": [langs[s]["kept"]["tokens"] for s in names]}, unit=" tokens")))
    return out


def reject_rows(counts: dict) -> list[tuple[str, int]]:
    rows = [(f"{stage} / {reason}", n) for stage, outcomes in counts.items()
            for reason, n in outcomes.items() if reason not in NOT_REJECTS and n > 0]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def funnel_rows(counts: dict) -> list[tuple[str, int]]:
    stages = [s for s in stages_in_order(counts) if "kept" in counts[s]]
    return [(f"{s} (repositories)" if s in REPOSITORY_STAGES else s, counts[s]["kept"]) for s in stages]


def packing_chart(manifest: dict) -> str | None:
    shards = manifest["shards"]
    if not shards:
        return None
    labels = [f"shard {s['shard']}" for s in shards]
    content = [s["tokens"] - s["padding_tokens"] for s in shards]
    return bar_chart("packing", "Tokens per shard: content, padding and dropped tail", labels, {
        "content tokens": content,
        "padding": [s["padding_tokens"] for s in shards],
        "dropped tail": [s["dropped_tail_tokens"] for s in shards],
    })


def mixture_charts(manifest: dict) -> list[tuple[str, str]]:
    """(heading, svg): a mixture's task shares (realised vs the capped rate), or per split of an
    --all_holdouts version its examples and each split's realised shares."""
    out = []
    mixture = manifest.get("mixture")
    if mixture and mixture.get("tasks"):
        tasks = mixture["tasks"]
        names = sorted(tasks, key=lambda t: (-tasks[t]["realised"], t))
        out.append(("Mixture proportions", bar_chart(
            "mixture", f"Share of the {mixture['examples']:,} training examples per task (cap"
                       f" {mixture['mixing_cap']:,})", [f"{t} ({tasks[t]['cluster']})" for t in names],
            {"capped rate": [round(100 * tasks[t]["rate"], 2) for t in names],
             "realised": [round(100 * tasks[t]["realised_proportion"], 2) for t in names]}, unit="%", left=280)))
    splits = manifest.get("splits")
    if splits:
        names = list(splits)
        out.append(("Examples per split", bar_chart(
            "splits", "Training and evaluation examples per split (by held-out cluster)",
            [splits[s]["holdout"] or s for s in names],
            {"training examples": [splits[s]["totals"]["documents"] for s in names],
             "evaluation examples": [splits[s]["eval_examples"] for s in names]}, left=280)))
        for i, name in enumerate(names):
            counts = splits[name]["mixture"]
            total = sum(counts.values())
            tasks = sorted(counts, key=lambda t: (-counts[t], t))
            if not total:
                continue
            out.append((f"Mixture of {name}", bar_chart(
                f"mixture-{i}", f"{name}: share of its {total:,} training examples per task", tasks,
                {"realised": [round(100 * counts[t] / total, 2) for t in tasks]}, unit="%", left=280)))
    return out


def overview(manifest: dict) -> str:
    t = datasets.split_totals(manifest) if manifest.get("splits") else manifest["totals"]
    seq_tokens = t["tokens"]
    content = seq_tokens - t["padding_tokens"]
    kept_tokens = content + t["dropped_tail_tokens"]
    rows = [
        ("dataset", f"{manifest['dataset']} · version {manifest['version']['name']}"),
        ("created", f"{manifest['created']['started']} → {manifest['created']['finished']}"),
        ("sluice", summary.built_by(manifest, 12)),
        ("config fingerprint", manifest["config_fingerprint"][:16]),
        *([("split", manifest["version"]["split"])] if manifest["version"].get("split") else []),
        *([("splits", f"{len(manifest['splits'])}, totals summed over them")] if manifest.get("splits") else []),
        ("shards / sequences", f"{fmt(t['shards'])} / {fmt(t['records'])}"),
        ("tokens / documents", f"{fmt(seq_tokens)} / {fmt(t['documents'])}"),
        ("packing efficiency", f"{100 * content / seq_tokens:.2f}% of sequence tokens are content"
                               if seq_tokens else "no sequences"),
        ("tokens lost to dropped tails", f"{100 * t['dropped_tail_tokens'] / kept_tokens:.2f}%"
                                         if kept_tokens else "none"),
    ]
    for role, parent in manifest["lineage"]["parents"].items():
        rows.append((f"parent {role}", f"{parent['path']} (version {parent['version']})"))
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:820px;color:#222}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse} th{text-align:left;padding:2px 12px 2px 0;color:#555;font-weight:normal}
svg text{font:12px system-ui,sans-serif;fill:#333} svg .title{font-weight:bold;font-size:13px}
svg .value,svg .axis{fill:#666;font-size:11px} svg .grid{stroke:#eee}
.note{color:#777} pre.note{white-space:pre-wrap}
"""
# Marks each chart drawn once laid out: a chart counts as drawn when it has marks and its marks
# cover a non-empty area. The tests read these marks back from headless Chromium.
SCRIPT = """
window.addEventListener('load', function () {
  var charts = document.querySelectorAll('svg.chart'), done = [];
  charts.forEach(function (svg) {
    var marks = svg.querySelectorAll('.mark'), area = 0;
    marks.forEach(function (m) { var b = m.getBBox(); area += b.width * b.height; });
    var drawn = marks.length > 0 && area > 0 && svg.getBoundingClientRect().width > 0;
    svg.setAttribute('data-drawn', drawn ? 'yes' : 'no');
    done.push(svg.getAttribute('data-chart') + '=' + (drawn ? 'yes' : 'no'));
  });
  document.getElementById('chart-status').textContent = done.join(' ');
});
"""


def render(manifest: dict) -> str:
    sections = [("Overview", overview(manifest))]
    for heading, svg in source_charts(manifest) + mixture_charts(manifest):
        sections.append((heading, svg))
    funnel = funnel_rows(manifest["counts"])
    if funnel:
        sections.append(("Documents kept after each stage", bar_chart(
            "funnel", "Kept after each stage", [r[0] for r in funnel], {"kept": [r[1] for r in funnel]})))
    rejects = reject_rows(manifest["counts"])
    sections.append(("Rejects per stage and reason", bar_chart(
        "rejects", "Rejects per stage and reason", [r[0] for r in rejects], {"rejects": [r[1] for r in rejects]},
        log_scale=True) if rejects else '<p class="note">No rejects.</p>'))
    hist = manifest.get("histograms", {})
    lengths = histogram_chart("document-lengths", "Documents by UTF-8 length", {
        "before filtering (as read)": hist.get(histograms.DOCUMENT_BYTES_READ, []),
        "after filtering (tokenized)": hist.get(histograms.DOCUMENT_BYTES_KEPT, []),
    }, "document length (bytes, power-of-two buckets)", sizes=True)
    sections.append(("Document lengths before and after filtering",
                     lengths or '<p class="note">No length histogram in this manifest.</p>'))
    clusters = histogram_chart("cluster-sizes", "Near-duplicate clusters by size", {
        "clusters": hist.get(histograms.NEAR_DUPLICATE_CLUSTER_SIZE, [])},
        "documents in the cluster (kept one included)", sizes=False)
    if manifest.get("near_dedup"):
        sections.append(("Near-duplicate cluster sizes", clusters or
                         '<p class="note">Near-dedup ran and found no cluster.</p>'))
    else:
        sections.append(("Near-duplicate cluster sizes", '<p class="note">Near-dedup was off for this version.</p>'))
    packing = packing_chart(manifest)
    no_shards = ("No shards here: each split's are in its folder (report that folder)." if manifest.get("splits")
                 else "No shards (a tokenizer version).")
    sections.append(("Packing efficiency", packing or f'<p class="note">{no_shards}</p>'))
    title = f"Sluice · {manifest['version']['dataset_folder'].rsplit('/', 1)[-1]} / {manifest['version']['name']}"
    if manifest["version"].get("split"):
        title += f" / {manifest['version']['split']}"
    body = "".join(f"<h2>{esc(h)}</h2>{content}" for h, content in sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{body}"
            f"<pre id=\"chart-status\" class=\"note\"></pre><script>{SCRIPT}</script></body></html>\n")


def main(argv=None):
    parser = ArgumentParser(prog="sluice report", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", help="ROOT/DATASET/VERSION (any fsspec URL).")
    parser.add_argument("--output", help="HTML file to write (default: DATASET-VERSION.html).")
    args = parser.parse_args(argv)
    manifest = datasets.load_manifest(args.version)
    output = args.output or "-".join([manifest["version"]["dataset_folder"].rstrip("/").rsplit("/", 1)[-1],
                                      manifest["version"]["name"],
                                      *([manifest["version"]["split"]] if manifest["version"].get("split") else [])
                                      ]) + ".html"
    page = datasets.presented(args.version, render, manifest)
    with open(output, "w", encoding="utf-8") as handle:
        handle.write(page)
    print(f"wrote {os.path.abspath(output)}")


def run(argv=None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    raise SystemExit(run())
