"""The FLAN experiments (training/experiments/) on real pipeline output and real tiny checkpoints:
each run() writes its results, a PNG and an SVG; the ladder's k = 0 point is the untuned base; the
page shows every table and figure; the GPU script parses and its config is ~100M parameters."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the training jobs need the 'train' extra (torch)")
pytest.importorskip("transformers", reason="the training jobs need the 'train' extra (transformers)")

import hashlib
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

from schemas import manifest as manifest_schema
from training import model as model_lib
from training.cli import UsageError
from training.eval import flan
from training.experiments import __main__ as driver
from training.experiments import cluster_ladder, common, instruction_tuning, model_size, page
from training.lineage import lineage_chain, read_lineage

from .conftest import ROOT

LIMIT = 2
STEPS = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_figures(report: dict) -> None:
    assert report["figures"]
    for fig in report["figures"]:
        with open(fig["png"], "rb") as handle:
            png = handle.read()
        assert png[:8] == PNG_SIGNATURE and len(png) > 5000  # a drawn picture, not an empty canvas
        root = ET.parse(fig["svg"]).getroot()
        assert root.tag.endswith("svg") and len(list(root.iter())) > 50


@pytest.fixture(scope="module")
def data_root(corpus_streams, instruct_version):
    """ROOT with nl/v1, multi/v1, mono/v1 and the --all_holdouts instruct/v1 of conftest."""
    return corpus_streams["nl"].parents[1]


@pytest.fixture(scope="module")
def heldout_split(instruct_version):
    return str(instruct_version / "holdout-sentiment")  # poem_sentiment held out, rank classification


@pytest.fixture(scope="module")
def base(tmp_path_factory, corpus_streams, tiny_config, sample_tokenizer):
    """One tiny nl -> multi -> mono chain, the base checkpoint every experiment here starts from."""
    out = tmp_path_factory.mktemp("base")
    return common.train_chain({k: str(v) for k, v in corpus_streams.items()}, str(out), str(tiny_config),
                              steps=STEPS, device="cpu", tokenizer=str(sample_tokenizer))["mono"]


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, sample_tokenizer):
    """A ladder-like version: clusters-1 trains on closed_book_qa, clusters-2 on closed_book_qa and coreference,
    both holding out sentiment (poem_sentiment). Each split is a real pipelines.instruct run on a
    registry restricted to its training clusters (pipelines.instruct --cluster_ladder is not on this
    branch yet), copied under one root with an index manifest shaped as version_writer.write_index's."""
    import yaml

    from pipelines import instruct

    registry_path = ROOT / "samples" / "instruct" / "tasks.yaml"
    tasks = yaml.safe_load(registry_path.read_text())["tasks"]
    for task in tasks:
        task["source"]["splits"] = {k: str(registry_path.parent / v) for k, v in task["source"]["splits"].items()}
    work = tmp_path_factory.mktemp("ladder")
    rungs = {1: ("web_questions", "nq_open", "poem_sentiment"), 2: ("web_questions", "nq_open", "gap",
                                                                     "poem_sentiment")}
    version = work / "instruct" / "v1"
    version.mkdir(parents=True)
    splits = {}
    for k, names in rungs.items():
        registry = work / f"tasks-{k}.json"
        registry.write_text(json.dumps({"tasks": [t for t in tasks if t["name"] in names]}))
        built = work / "runs" / f"k{k}"
        instruct.main(["--tasks", str(registry), "--output", str(built), "--tokenizer", str(sample_tokenizer),
                       "--holdout_cluster", "sentiment", "--num_shards", "1", "--mixing_cap", "40",
                       "--max_examples_per_task", "40", "--no-decontaminate", "--seq_len", "128",
                       "--max_input_tokens", "96", "--max_target_tokens", "31"])
        shutil.copytree(built, version / f"clusters-{k}")
        raw = (version / f"clusters-{k}" / "manifest.json").read_bytes()
        manifest = json.loads(raw)
        splits[f"clusters-{k}"] = {"path": f"clusters-{k}", "totals": manifest["totals"],
                                   "manifest_sha256": hashlib.sha256(raw).hexdigest()}
    top = {**manifest, "shards": [], "totals": manifest_schema.totals_of([]), "splits": splits,
           "version": {"name": "v1", "dataset_folder": str(version.parent)}}
    manifest_schema.validate(top)
    (version / "manifest.json").write_text(json.dumps(top))
    return version


@pytest.fixture(scope="module")
def reports(tmp_path_factory, base, heldout_split, ladder, data_root, tiny_config, sample_tokenizer):
    """Each experiment run once on the tiny checkpoints: {name: report}."""
    out = tmp_path_factory.mktemp("experiments")
    settings = {"limit": LIMIT, "device": "cpu", "steps": STEPS}
    return {
        "instruction_tuning": instruction_tuning.run(str(out / "instruction_tuning"), parent=base, data=heldout_split,
                                                     config=str(tiny_config), **settings),
        "cluster_ladder": cluster_ladder.run(str(out / "cluster_ladder"), ladder=str(ladder), base=base,
                                             config=str(tiny_config), **settings),
        "model_size": model_size.run(str(out / "model_size"), data=str(data_root), version="v1",
                                     instruct_split="holdout-sentiment", tokenizer=str(sample_tokenizer),
                                     configs=[str(tiny_config), str(ROOT / "training/configs/tiny_wide.json")],
                                     **settings),
    }


def results_of(report: dict) -> dict:
    with open(report["results"]) as handle:
        return json.load(handle)


def test_instruction_tuning_scores_parent_and_tuned_on_the_same_set(reports, base, heldout_split):
    report = reports["instruction_tuning"]
    check_figures(report)
    results = results_of(report)
    parent, tuned = results["parent"], results["tuned"]
    assert parent["checkpoint"] == base and parent["data"] == tuned["data"]
    assert set(parent["tasks"]) == set(tuned["tasks"]) == {"poem_sentiment"}
    assert parent["tasks"]["poem_sentiment"]["examples"] == LIMIT
    # the tuned model is the base instruction-tuned on the held-out split's training mixture
    lineage = read_lineage(tuned["checkpoint"])
    assert lineage["stage"] == "instruct" and lineage["data"]["path"] == heldout_split
    assert lineage["parent_path"] == base
    (table,) = report["tables"]
    rows = {row[0]: row for row in table["rows"]}
    task = rows["poem_sentiment"]
    assert task[3:] == [round(r["tasks"]["poem_sentiment"][k], 4) for r in (parent, tuned) for k in ("mean", "best")]
    assert rows["mean over clusters"][3] == round(parent["clusters"]["sentiment"], 4)
    assert rows["cluster sentiment"][5] == round(tuned["clusters"]["sentiment"], 4)


def test_cluster_ladder_trains_each_split_from_the_base(reports, base, ladder):
    report = reports["cluster_ladder"]
    check_figures(report)
    results = results_of(report)
    points = results["points"]
    assert [p["k"] for p in points] == [0, 1, 2]
    assert [p["train_clusters"] for p in points] == [[], ["closed_book_qa"], ["closed_book_qa", "coreference"]]
    # k = 0 is the untuned base, scored on the evaluation set every split shares
    assert points[0]["checkpoint"] == base and points[0]["split"] is None
    again = flan.evaluate(base, str(ladder / "clusters-2"), limit=LIMIT, device="cpu")
    assert points[0]["clusters"] == again["clusters"] == {"sentiment": pytest.approx(points[0]["mean"])}
    for p in points[1:]:
        lineage = read_lineage(p["checkpoint"])
        assert lineage["parent_path"] == base and lineage["data"]["path"] == str(ladder / p["split"])
        assert lineage["config"]["train"]["max_steps"] == STEPS
    assert results["heldout_clusters"] == ["sentiment"]
    (table,) = report["tables"]
    assert table["columns"] == ["k", "split", "training clusters", "sentiment", "mean"]
    assert [row[0] for row in table["rows"]] == [0, 1, 2] and table["rows"][0][1] == "(untuned base)"


def test_a_ladder_needs_clusters_splits_sharing_one_eval_set(ladder, instruct_version, base, tmp_path):
    with pytest.raises(UsageError, match="lists no clusters-<k> split"):
        cluster_ladder.run(str(tmp_path / "a"), ladder=str(instruct_version), base=base)
    broken = tmp_path / "broken"
    shutil.copytree(ladder, broken)
    split = json.loads((broken / "clusters-2" / "manifest.json").read_text())
    split["eval"]["files"][0]["sha256"] = "0" * 64
    (broken / "clusters-2" / "manifest.json").write_text(json.dumps(split))
    with pytest.raises(UsageError, match="do not share one evaluation set .clusters-2 differs"):
        cluster_ladder.run(str(tmp_path / "b"), ladder=str(broken), base=base)


def test_model_size_counts_parameters_and_scores_tuned_and_untuned(reports):
    from transformers import CodeGenForCausalLM

    report = reports["model_size"]
    check_figures(report)
    models = results_of(report)["models"]
    assert [m["name"] for m in models] == ["tiny", "tiny_wide"]
    for m in models:
        stock = CodeGenForCausalLM.from_pretrained(m["checkpoints"]["tuned"])
        assert m["parameters"] == sum(p.numel() for p in stock.parameters())
        assert read_lineage(m["checkpoints"]["tuned"])["parent_path"] == m["checkpoints"]["untuned"]
        assert [e["stage"] for e in lineage_chain(m["checkpoints"]["tuned"])] == ["nl", "multi", "mono", "instruct"]
        assert set(m["tuned"]["clusters"]) == set(m["untuned"]["clusters"]) == {"sentiment"}
    assert models[0]["parameters"] < models[1]["parameters"]
    (table,) = report["tables"]
    assert [row[3] for row in table["rows"]] == [m["parameters"] for m in models]


def test_the_page_shows_every_table_and_figure(reports, tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    hostile = {**reports["model_size"], "name": "x", "title": "<script>alert(1)</script>"}
    path = page.write(str(out), [*reports.values(), hostile])
    text = open(path, encoding="utf-8").read()
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for report in reports.values():
        assert report["title"] in text or page.html.escape(report["title"]) in text
        for table in report["tables"]:
            assert page.html.escape(table["caption"]) in text
            assert all(f"<th>{page.html.escape(c)}</th>" in text for c in table["columns"])
            for row in table["rows"]:
                assert "<tr>" + "".join(f"<td>{page.cell(v)}</td>" for v in row) + "</tr>" in text
        for fig in report["figures"]:
            assert f'src="{page.link(str(out), fig["png"])}"' in text
            assert f'href="{page.link(str(out), fig["svg"])}"' in text
            assert (out / page.link(str(out), fig["png"])).resolve() == pathlib_resolve(fig["png"])


def pathlib_resolve(path):
    import pathlib

    return pathlib.Path(path).resolve()


def test_the_driver_refuses_an_unknown_experiment_in_one_line(capsys, tmp_path):
    assert driver.run(["--data", str(tmp_path), "--version", "v1", "--ladder", str(tmp_path),
                       "--output", str(tmp_path / "o"), "--only", "instruction_tuning,nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown experiment 'nope'" in err


def test_gpu_script_parses_and_its_config_is_about_100m_parameters():
    import torch

    subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_experiments.sh")], check=True)
    config = model_lib.read_config_file(str(ROOT / "training" / "configs" / "codegen-100m.json"))
    for key in ("batch_size", "grad_accum", "lr", "max_steps", "warmup_steps", "checkpoint_every"):
        assert key in config["train"]
    # the script trains with the demo tokenizer (8,000 pieces; make demo's --vocab_size)
    with torch.device("meta"):
        model = model_lib.SdpaCodeGenForCausalLM(model_lib.model_config(config["model"], 8000, eos_token_id=1))
    assert 80e6 < sum(p.numel() for p in model.parameters()) < 120e6
