"""The instruct pipeline end to end on the real samples: held-out clusters, the capped mixture,
packed examples equal to the rendered ones, determinism across worker counts, bad input."""

from __future__ import annotations

import json
import pathlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import instruct
from schemas.instruct_eval import read_eval_records
from schemas.instruct_parse import load_registry
from schemas.packed_stream import read_arrow_columns, read_tfrecord_columns
from schemas.tokenizer import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "samples" / "instruct" / "tasks.yaml"
FLAGS = ["--holdout_cluster", "commonsense", "--num_shards", "2", "--seq_len", "1536",
         "--max_examples_per_task", "60", "--mixing_cap", "40", "--seed", "3"]


def run(tokenizer, output, *extra, registry=REGISTRY):
    return instruct.main(["--tasks", str(registry), "--output", str(output), "--tokenizer", str(tokenizer),
                          *extra])


@pytest.fixture(scope="module")
def holdout_run(sample_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("versions") / "instruct" / "v1"
    return out, run(sample_tokenizer, out, *FLAGS, "--write_examples")["holdout-commonsense"]


def examples_of(out):
    tables = [pq.read_table(p) for p in sorted((out / "examples").glob("*.parquet"))]
    return pa.concat_tables(tables).to_pylist()


def eval_records(path):
    return list(read_eval_records(str(path)))


def test_published_and_held_out(holdout_run, published_output_check):
    out, manifest = holdout_run
    published_output_check(out, manifest, num_shards=2)
    assert manifest["holdout"]["excluded_clusters"] == ["commonsense", "reading_comprehension_with_commonsense"]
    rows = examples_of(out)
    train = [r for r in rows if r["split"] == "train"]
    held = [r for r in rows if r["split"] == "eval"]
    assert {r["cluster"] for r in train}.isdisjoint({"commonsense", "reading_comprehension_with_commonsense"})
    assert {r["task"] for r in train} == set(manifest["mixture"]["tasks"])
    assert {"code_docstring_to_function", "code_function_to_docstring", "gap", "gsm8k"} <= {r["task"] for r in train}
    # The evaluation set: every evaluation example of the held-out cluster's tasks under each of its
    # task's eight forward templates (50, 100 and 50 examples), and nothing else.
    assert manifest["eval"]["tasks"] == {"codah": 400, "piqa": 800, "strategyqa": 400}
    assert manifest["eval"]["metrics"] == {"codah": ["accuracy"], "piqa": ["accuracy"], "strategyqa": ["accuracy"]}
    assert manifest["eval"]["templates"] == {t: list(range(8)) for t in ("codah", "piqa", "strategyqa")}
    records = eval_records(out)  # the split's folder: its eval/ files
    assert len(records) == 1600 and {r.task for r in records} == {"codah", "piqa", "strategyqa"}
    assert {r["task"] for r in held} == {"codah", "piqa", "strategyqa"} and len(held) == 1600
    assert not any(r["inverse"] for r in held)
    registry = load_registry(str(REGISTRY))
    for r in records:  # forward templates only, their options after the input, the target among them
        task = registry.task(r.task)
        assert not task.templates[r.template].inverse and r.cluster == task.cluster
        assert r.input.endswith("\n\nOPTIONS:\n" + "\n".join(f"- {o}" for o in r.options))
        assert r.target in r.options and r.references == (r.target,) and r.metrics == ("accuracy",)
    assert {r.options for r in records if r.task == "strategyqa"} == {("yes", "no")}
    assert len({r.options for r in records if r.task == "piqa"}) == 100  # each example its own two
    assert all(r.input_ids and r.target_ids for r in records)
    assert manifest["stream"]["segment_ids"] and manifest["stream"]["loss_mask"]


def test_mixture_follows_the_capped_rule(holdout_run):
    _, manifest = holdout_run
    tasks = manifest["mixture"]["tasks"]
    weights = {t: min(e["available"], 40) for t, e in tasks.items()}
    assert all(e["available"] <= 60 for e in tasks.values())
    assert tasks["code_docstring_to_function"]["available"] == 60  # capped by --max_examples_per_task
    for name, entry in tasks.items():
        assert entry["realised"] == weights[name] == entry["examples"]
        assert entry["rate"] == weights[name] / sum(weights.values())
        assert entry["realised_proportion"] == entry["rate"]
    assert manifest["totals"]["documents"] == manifest["mixture"]["examples"] == sum(weights.values())


def segments_of(columns, eot_id):
    """(input ids, target ids) of every packed example, from segment ids and the loss mask."""
    out = []
    for ids, mask, seg in zip(columns["input_ids"], columns["loss_mask"], columns["segment_ids"]):
        used = int((seg > 0).sum())
        assert (seg[used:] == 0).all() and (mask[used:] == 0).all()
        for s in range(1, int(seg.max()) + 1):
            where = np.flatnonzero(seg == s)
            tokens, target = ids[where], mask[where].astype(bool)
            assert tokens[-1] == eot_id and target[-1]
            first = int(np.argmax(target))
            assert target[first:].all() and not target[:first].any()  # loss only on the target
            out.append((tuple(tokens[:first].tolist()), tuple(tokens[first:-1].tolist())))
    return out


def test_packed_examples_are_the_rendered_ones(holdout_run, sample_tokenizer):
    out, manifest = holdout_run
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    packed = []
    for shard in manifest["shards"]:
        arrow = next(f for f in shard["files"] if f["format"] == "arrow")
        tfrecord = next(f for f in shard["files"] if f["format"] == "tfrecord")
        columns = read_arrow_columns(out / arrow["path"])
        with open(out / tfrecord["path"], "rb") as handle:
            from_tfrecord = read_tfrecord_columns(handle)
        for name in ("input_ids", "loss_mask", "segment_ids"):
            np.testing.assert_array_equal(columns[name], from_tfrecord[name])
        packed += segments_of(columns, tokenizer.eot_id)
    expected = []
    for row in examples_of(out):
        if row["split"] == "train":
            inputs = tokenizer.encode_array(row["input"] + "\n")[:1024]
            targets = tokenizer.encode_array(row["target"])[:256]
            expected.append((tuple(inputs.tolist()), tuple(targets.tolist())))
    assert sorted(packed) == sorted(expected)


def test_same_bytes_with_two_worker_processes(holdout_run, sample_tokenizer, tmp_path):
    out, manifest = holdout_run
    other_out = tmp_path / "instruct" / "v2"
    other = run(sample_tokenizer, other_out, *FLAGS, "--direct_running_mode=multi_processing",
                "--direct_num_workers=2")["holdout-commonsense"]
    assert other["shards"] == manifest["shards"] and other["eval"] == manifest["eval"]
    assert other["mixture"] == manifest["mixture"]
    for name in [f["path"] for s in manifest["shards"] for f in s["files"]] + ["eval/eval-00000-of-00001.tfrecord"]:
        assert (other_out / name).read_bytes() == (out / name).read_bytes()


def small_registry(tmp_path, names=("web_questions", "nq_open", "poem_sentiment")) -> pathlib.Path:
    """Real sample tasks (by default three, in two clusters), paths made absolute."""
    data = yaml.safe_load(REGISTRY.read_text())
    tasks = [t for t in data["tasks"] if t["name"] in names]
    for task in tasks:
        task["source"]["splits"] = {k: str(REGISTRY.parent / v) for k, v in task["source"]["splits"].items()}
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({"tasks": tasks}))
    return path


def test_all_holdouts_in_one_run(sample_tokenizer, tmp_path, capsys):
    """Every split in one version: a complete dataset per subfolder, indexed by the root manifest
    (published last, no shards of its own), checked by ``sluice datasets`` as one version."""
    from pipelines import datasets, report, summary
    from schemas import dataset_version

    registry = small_registry(tmp_path)
    out = tmp_path / "instruct" / "v1"
    # Leftovers of an interrupted publish (marker, a split's files, no manifest) and of a killed
    # run (its staging folder): the rerun clears both.
    (out / "holdout-sentiment").mkdir(parents=True)
    (out / "holdout-sentiment" / "train-00000-of-00001.arrow").write_bytes(b"half")
    (out / "_PUBLISHING").write_text("interrupted")
    (tmp_path / "instruct" / "_staging" / "v1" / "holdout-nli").mkdir(parents=True)
    manifests = run(sample_tokenizer, out, "--all_holdouts", "--num_shards", "1", "--mixing_cap", "100",
                    "--no-decontaminate", registry=registry)
    top = manifests.pop("version")
    assert sorted(manifests) == ["holdout-closed_book_qa", "holdout-sentiment"]
    for name, manifest in manifests.items():
        cluster = name.split("-", 1)[1]
        on_disk, sha256 = dataset_version.read_manifest_file(str(out / name))
        assert on_disk == manifest and manifest["holdout"]["cluster"] == cluster
        assert manifest["version"] == {"name": "v1", "dataset_folder": str(tmp_path / "instruct"), "split": name}
        assert top["splits"][name]["manifest_sha256"] == sha256
        assert top["splits"][name]["totals"] == manifest["totals"]
        assert datasets.verify(str(out / name)) == []  # a split folder is a dataset of its own
        # A split's counts are its own shards' and eval files', plus the stages every split shares.
        assert manifest["counts"]["pack"]["sequences"] == manifest["totals"]["records"] > 0
        assert manifest["counts"]["instruct_eval"]["examples"] == manifest["eval"]["examples"] > 0
        assert manifest["counts"]["instruct_tokenize"] == top["counts"]["instruct_tokenize"]
        assert top["counts"][f"pack@{name}"] == manifest["counts"]["pack"]
        assert not any("@" in stage for stage in manifest["counts"])
    assert list(manifests["holdout-sentiment"]["mixture"]["tasks"]) == ["web_questions"]
    assert manifests["holdout-sentiment"]["eval"]["tasks"] == {"poem_sentiment": 350}  # 7 forward templates
    assert list(manifests["holdout-closed_book_qa"]["mixture"]["tasks"]) == ["poem_sentiment"]
    assert manifests["holdout-closed_book_qa"]["eval"]["tasks"] == {"nq_open": 700, "web_questions": 350}
    assert dataset_version.read_manifest(str(out)) == top and top["shards"] == []
    assert top["config"]["splits"] == ["holdout-closed_book_qa", "holdout-sentiment"]
    assert top["lineage"]["parents"]["tokenizer"]["path"] == str(sample_tokenizer.parent)
    assert not (out / "_run").exists() and not (tmp_path / "instruct" / "_staging" / "v1").exists()
    assert sorted(p.name for p in out.iterdir()) == ["holdout-closed_book_qa", "holdout-sentiment", "manifest.json"]
    # datasets list/show/verify see one version with its splits.
    rows = [r for r in datasets.list_versions(str(tmp_path)) if r["dataset"] == "instruct"]
    assert [(r["version"], r["status"]) for r in rows] == [("v1", "published")]
    assert rows[0]["records"] == sum(m["totals"]["records"] for m in manifests.values()) > 0
    assert "split holdout-sentiment" in summary.summarize(top)
    assert "split holdout-sentiment" in datasets.show(str(out / "holdout-sentiment"))
    changes = dict((k, (a, b)) for k, a, b in datasets.diff(str(out / "holdout-sentiment"),
                                                             str(out / "holdout-closed_book_qa"))["groups"])
    assert changes["task web_questions: examples"] == (manifests["holdout-sentiment"]["mixture"]["examples"], None)
    assert datasets.verify(str(out)) == []
    shard = manifests["holdout-sentiment"]["shards"][0]["files"][0]["path"]
    tampered = out / "holdout-sentiment" / shard
    tampered.write_bytes(tampered.read_bytes()[:-1] + b"\0")
    problems = datasets.verify(str(out))
    assert problems and all(p.startswith(f"holdout-sentiment/{shard}: ") for p in problems)
    assert datasets.run(["verify", str(out)]) == 1
    assert f"FAIL holdout-sentiment/{shard}: " in capsys.readouterr().out
    edited = out / "holdout-closed_book_qa" / "manifest.json"
    edited.write_text(edited.read_text() + " ")
    assert any(p.startswith("holdout-closed_book_qa/manifest.json: sha256") for p in datasets.verify(str(out)))
    # The report charts the splits' examples and each split's mixture; the rest has no shards to chart.
    page = tmp_path / "index.html"
    assert report.run([str(out), "--output", str(page)]) == 0
    charts = re.findall(r'data-chart="([^"]+)"', page.read_text())
    assert {"splits", "mixture-0", "mixture-1"} <= set(charts) and "packing" not in charts
    drawn = chart_status(page, tmp_path)
    assert drawn is None or drawn == {chart: "yes" for chart in charts}
    # A published version is immutable.
    assert instruct.run(["--tasks", str(registry), "--output", str(out), "--tokenizer", str(sample_tokenizer),
                         "--all_holdouts"]) == 2
    assert "already published" in capsys.readouterr().err


def test_evaluation_sets_measure_the_task(sample_tokenizer, tmp_path):
    """Every split's evaluation set, built by --all_holdouts from real sample tasks: each held-out
    example once under each forward template of its task and never under an inverse one (e-SNLI's
    inverse templates would put a hypothesis in the target), with the task's metrics, its options and
    every reference answer its dataset gives (NQ-open's and WebQuestions' answer lists, SciTLDR's
    several summaries, DART's annotations, XQuAD's answers)."""
    names = ("e_snli", "xquad_en", "nq_open", "web_questions", "scitldr", "dart", "wsc", "poem_sentiment")
    registry_path = small_registry(tmp_path, names)
    registry = load_registry(str(registry_path))
    out = tmp_path / "instruct" / "v1"
    manifests = run(sample_tokenizer, out, "--all_holdouts", "--num_shards", "1", "--mixing_cap", "50",
                    "--no-decontaminate", registry=registry_path)
    manifests.pop("version")
    seen = {}
    for name, manifest in manifests.items():
        records = eval_records(out / name)
        split_tasks = {t.name for t in registry.tasks if t.cluster == manifest["holdout"]["cluster"]}
        assert {r.task for r in records} == split_tasks and len(records) == manifest["eval"]["examples"]
        templates = {}
        for r in records:
            task = registry.task(r.task)
            assert not task.templates[r.template].inverse, (r.task, r.template)
            assert r.metrics == task.metrics and manifest["eval"]["metrics"][r.task] == list(task.metrics)
            assert r.references[0] == r.target and len(set(r.references)) == len(r.references)
            templates.setdefault((r.task, r.id), []).append(r.template)
            seen[(r.task, r.id, r.template)] = r
        # each example exactly once per forward template of its task
        for (task_name, _), got in templates.items():
            assert sorted(got) == list(registry.task(task_name).forward_templates), task_name
        assert {t for t, _ in templates} == split_tasks
    sources = {name: [json.loads(line) for line in open(path)] for name, path in (
        ("nq_open", REGISTRY.parent / "nq_open" / "validation.jsonl"),
        ("web_questions", REGISTRY.parent / "web_questions" / "validation.jsonl"),
        ("scitldr", REGISTRY.parent / "scitldr" / "validation.jsonl"),
        ("dart", REGISTRY.parent / "dart" / "validation.jsonl"),
        ("xquad_en", REGISTRY.parent / "xquad_en" / "validation.jsonl"),
        ("wsc", REGISTRY.parent / "wsc" / "test.jsonl"))}
    want = {}
    for i, row in enumerate(sources["nq_open"]):
        want[("nq_open", f"nq_open/validation.jsonl:{i}")] = row["answer"]
    for row in sources["web_questions"]:
        want[("web_questions", f"web_questions/{row['qId']}")] = row["answers"]
    for row in sources["scitldr"]:
        want[("scitldr", f"scitldr/{row['paper_id']}")] = row["target"]
    for i, row in enumerate(sources["dart"]):
        want[("dart", f"dart/validation.jsonl:{i}")] = [a["text"] for a in row["annotations"]]
    for row in sources["xquad_en"]:
        want[("xquad_en", f"xquad_en/{row['id']}")] = [a["text"] for a in row["answers"]]
    for (task, example_id, _), r in seen.items():
        if (task, example_id) in want:
            assert r.references == tuple(dict.fromkeys(want[(task, example_id)])), (task, example_id)
    several = {task for (task, example_id, _), r in seen.items() if len(r.references) > 1}
    assert several == {"nq_open", "web_questions", "scitldr"}  # the samples' XQuAD and DART rows have one
    moon = seen[("nq_open", "nq_open/validation.jsonl:0", 0)]
    assert moon.references == ("14 December 1972 UTC", "December 1972") and moon.metrics == ("exact_match", "f1")
    for i, row in enumerate(sources["wsc"]):  # per-example options: the two candidates
        for template in range(10):
            r = seen[("wsc", f"wsc/test.jsonl:{i}", template)]
            assert r.options == tuple(row["answers"]) and r.target in r.options
    e_snli = [r for (task, _, _), r in seen.items() if task == "e_snli"]
    assert len(e_snli) == 700 and {r.target for r in e_snli} <= set(registry.task("e_snli").options)
    assert {r.metric for r in seen.values() if r.task in ("dart", "scitldr")} == {"rouge_l"}


def test_bad_registry_is_one_line(sample_tokenizer, tmp_path, capsys):
    registry = small_registry(tmp_path)
    data = json.loads(registry.read_text())
    data["tasks"][0]["templates"][2]["input"] = "Answer: {question} ({topic})"
    registry.write_text(json.dumps(data))
    code = instruct.run(["--tasks", str(registry), "--output", str(tmp_path / "out"),
                         "--tokenizer", str(sample_tokenizer)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "task web_questions: template 2 names topic, not a mapped field" in err
    assert not (tmp_path / "out").exists()
    assert instruct.run(["--tasks", str(REGISTRY), "--output", str(tmp_path / "o"), "--tokenizer",
                         str(sample_tokenizer), "--seq_len", "1000"]) == 2
    assert instruct.run(["--tasks", str(REGISTRY), "--output", str(tmp_path / "o"), "--tokenizer",
                         str(sample_tokenizer), "--holdout_cluster", "poetry"]) == 2
    assert instruct.run(["--tasks", str(REGISTRY), "--output", str(tmp_path / "o"), "--tokenizer",
                         str(sample_tokenizer), "--pack_tail", "drop"]) == 2


def test_training_copies_of_evaluation_examples_are_removed(sample_tokenizer, tmp_path):
    """A training task holding NQ-open evaluation questions loses exactly those long enough to match."""
    from transforms.decontamination import MIN_ITEM_TOKENS, tokens

    registry = small_registry(tmp_path)
    data = json.loads(registry.read_text())
    nq = next(t for t in data["tasks"] if t["name"] == "nq_open")
    copied = (REGISTRY.parent / "nq_open" / "validation.jsonl").read_text().splitlines()[:12]
    (tmp_path / "copy.jsonl").write_text("\n".join(copied) + "\n")
    leak = json.loads(json.dumps(nq))
    leak.update(name="nq_leak", cluster="sentiment", source={"format": "jsonl", "splits": {"train": str(tmp_path / "copy.jsonl")}})
    data["tasks"].append(leak)
    registry.write_text(json.dumps(data))
    manifests = run(sample_tokenizer, tmp_path / "out", "--holdout_cluster", "closed_book_qa", "--num_shards", "1",
                    "--benchmarks", "humaneval", registry=registry)
    long_enough = sum(len(tokens(json.loads(line)["question"])) >= MIN_ITEM_TOKENS for line in copied)
    assert long_enough > 0
    manifest = manifests["holdout-closed_book_qa"]
    assert manifest["counts"]["decontaminate"]["contamination"] == long_enough
    assert manifest["mixture"]["tasks"]["nq_leak"]["available"] == 12 - long_enough


def test_no_holdout_builds_one_mixture_of_every_trainable_task(sample_tokenizer, tmp_path):
    registry = small_registry(tmp_path)
    manifest = run(sample_tokenizer, tmp_path / "out", "--num_shards", "1", "--no-decontaminate",
                   registry=registry)["all"]
    assert sorted(manifest["mixture"]["tasks"]) == ["poem_sentiment", "web_questions"]  # nq_open: eval only
    assert manifest["holdout"]["cluster"] is None
    assert manifest["eval"] == {"examples": 0, "tasks": {}, "metrics": {}, "templates": {}, "files": []}
    assert not (tmp_path / "out" / "eval").exists()


def chart_status(page, tmp_path):
    """{chart: drawn} as headless Chromium laid the report out (see test_report.py), or None
    without Chromium."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    status = re.search(r'<pre id="chart-status"[^>]*>([^<]*)</pre>', dom)
    assert status, dom[-2000:]
    return dict(item.split("=") for item in status.group(1).split())


def test_report_charts_the_mixture(holdout_run, tmp_path):
    """The split's report has the mixture chart (realised shares against the capped rates)."""
    from pipelines import report

    out, manifest = holdout_run
    page = tmp_path / "split.html"
    assert report.run([str(out), "--output", str(page)]) == 0
    text = page.read_text()
    charts = re.findall(r'data-chart="([^"]+)"', text)
    assert "mixture" in charts and "packing" in charts
    mixture = re.search(r'data-chart="mixture".*?</svg>', text).group(0)
    tasks = manifest["mixture"]["tasks"]
    assert mixture.count('class="mark"') == 2 * len(tasks)
    name, entry = next(iter(tasks.items()))
    assert f"{name} ({entry['cluster']}) · realised: {round(100 * entry['realised_proportion'], 2):,.1f}%" in mixture
    drawn = chart_status(page, tmp_path)
    if drawn is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); the charts' markup was checked")
    assert drawn == {chart: "yes" for chart in charts}


def test_a_mixture_with_no_example_fails_naming_the_stage_unless_allow_empty(
        sample_tokenizer, tmp_path, tiny_registry, write_registry, capsys):
    data = pathlib.Path(tiny_registry["tasks"][0]["source"]["splits"]["train"])
    data.write_text(json.dumps({"q": "what is up?", "a": ["a", "list"]}) + "\n")  # a list fills no template
    registry = write_registry(tiny_registry)
    out = tmp_path / "instruct" / "v1"
    argv = ["--tasks", registry, "--output", str(out), "--tokenizer", str(sample_tokenizer), "--num_shards", "1"]
    assert instruct.run(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert line == ("error: nothing to publish: split all: stage `instruct_render` rejected all 1 documents"
                    " (not_text 1); pass --allow_empty to publish an empty version")
    assert not out.exists()
    manifest = instruct.main([*argv, "--allow_empty"])["all"]
    assert manifest["config"]["allow_empty"] is True and manifest["totals"]["records"] == 0
