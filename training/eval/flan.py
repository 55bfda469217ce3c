"""FLAN zero-shot evaluation: a checkpoint scored on the held-out tasks of an instruct split.

    python -m training.eval.flan --checkpoint DIR --data ROOT/instruct/V/holdout-<cluster> \\
        --output RESULTS.json [--predictions PRED.jsonl] [--limit N] [--device auto] [--batch_size B]

The split's ``eval/eval-*.tfrecord`` (``schemas/instruct_eval.py``) hold every held-out example
under each forward template of its task. Each record is scored the way FLAN scores it, with the
model seeing exactly what the instruct streams show it: a packed example is its own segment
(positions from 0, attention inside it only) made of the tokens of ``input + "\\n"`` (truncated as
the streams truncate), the target's tokens (at most ``max_target_tokens``) and end-of-text.

- **Rank classification** (tasks whose metric is ``accuracy``; they have options): an option's
  score is the sum of the log-probabilities of its tokens (truncated like a target) and the
  end-of-text after them, given the input. The prediction is the highest-scoring option, the
  first of equal ones.
- **Generation** (every other metric): greedy decoding from the input until end-of-text or the
  split's ``max_target_tokens``; the prediction is scored against every reference
  (``training/eval/metrics.py``: the best over references for exact_match/f1/rouge_l).

A template's score is ``metrics.corpus_score`` over its examples (the mean of their scores; corpus
BLEU for ``bleu``); a task's ``mean`` and ``best`` are over its forward templates, on its primary
(first) metric; a cluster's score is the mean of its tasks' ``mean``. ``RESULTS.json``::

    {"tasks": {TASK: {"metric", "templates": {INDEX: score}, "mean", "best", "examples",
                      "metrics": {METRIC: {"templates", "mean", "best"}}}},
     "clusters": {CLUSTER: score}, "lineage": lineage_chain(checkpoint),
     "checkpoint": DIR, "data": {"path", "version", "manifest_fingerprint"}, "limit": N or null}

``examples`` counts a task's examples (each scored under all its templates); ``metrics`` holds every
metric the task names, the primary included. ``--predictions`` writes one JSON line per (task, id,
template), sorted so: ``task, cluster, id, template, metric, prediction, references, score``
(primary metric), ``scores`` (every metric) and, for rank classification, ``option_scores``
{option: log-probability} in the options' order. ``--limit N`` keeps the first N examples of each task by id, each under
all its forward templates. The summary (clusters, and per task its metric, mean, best and examples)
is printed as JSON on the last line.

Refused with one line: a data folder that is not an instruct split with an ``eval/`` set (an
``--all_holdouts`` root names its splits), a checkpoint whose tokenizer is not the one the split
was tokenized with (sha256 of its ``tokenizer.model`` and its lineage against the manifest), an
evaluation set that disagrees with its manifest (counts, tasks, templates), an unknown metric.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import fsspec

from schemas import dataset_version as dv
from schemas.files import sha256_of
from schemas.instruct import METRICS
from schemas.instruct_eval import EvalRecord, read_eval_records
from training.cli import ArgumentParser, UsageError, run_main
from training.eval import metrics as metrics_lib
from training.lineage import lineage_chain, read_lineage

TOKENIZER = "tokenizer.model"
RANK_CLASSIFICATION = "accuracy"


def parse_args(argv):
    parser = ArgumentParser(description="FLAN zero-shot scoring of a checkpoint on an instruct split's held-out tasks.")
    parser.add_argument("--checkpoint", required=True, help="Checkpoint folder (training.train's output).")
    parser.add_argument("--data", required=True, help="Instruct split folder ROOT/instruct/V[/holdout-<cluster>].")
    parser.add_argument("--output", required=True, help="RESULTS.json to write.")
    parser.add_argument("--predictions", help="PRED.jsonl: one line per (task, id, template).")
    parser.add_argument("--limit", type=int, help="Score the first N examples of each task (by id).")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda.")
    parser.add_argument("--batch_size", type=int, default=16, help="Sequences per forward pass.")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be >= 1")
    if args.batch_size < 1:
        raise UsageError("--batch_size must be >= 1")
    return args


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """A split's evaluation records, checked against its manifest, with what scoring needs."""

    manifest: dict
    records: list  # EvalRecord, sorted by (task, id, template)
    max_target_tokens: int
    examples: dict  # task -> number of examples kept


def read_split(data: str) -> tuple:
    """The split's manifest and its ``eval`` section; UsageError where ``data`` is not such a split."""
    try:
        manifest = dv.read_manifest(data)
        dv.require_stream(manifest, data)
    except dv.DatasetError as err:
        raise UsageError(str(err)) from None
    section = manifest.get("eval")
    if manifest.get("dataset") != "instruct" or not isinstance(section, dict) or not section.get("files"):
        raise UsageError(f"{data}: not an instruct split with an evaluation set (no eval files in its manifest)")
    return manifest, section


def read_eval_file(data: str, entry: dict) -> list:
    """The records of one evaluation file the manifest lists, its bytes, sha256 and count checked."""
    try:
        url = dv.member_path(data, entry["path"])
        with fsspec.open(url, "rb") as handle:
            size, digest = sha256_of(handle)
        if (size, digest) != (entry["bytes"], entry["sha256"]):
            raise UsageError(f"{url}: {size} bytes with sha256 {digest[:12]}..., not the manifest's"
                             f" {entry['bytes']} bytes and {entry['sha256'][:12]}...")
        records = list(read_eval_records(url))
    except (dv.DatasetError, ValueError) as err:
        raise UsageError(f"{data}: {err}") from None
    if len(records) != entry["examples"]:
        raise UsageError(f"{url}: {len(records)} evaluation records, the manifest says {entry['examples']}")
    return records


def load_eval_set(data: str, limit=None) -> EvalSet:
    """Every evaluation record of the split (or of each task's first ``limit`` examples by id),
    checked: its count and each task's templates against the manifest, its metrics known."""
    manifest, section = read_split(data)
    records = []
    for entry in section["files"]:
        records += read_eval_file(data, entry)
    templates = {task: sorted(indexes) for task, indexes in section["templates"].items()}
    by_example: dict = {}
    for record in records:
        unknown = [m for m in record.metrics if m not in METRICS]
        if unknown or not record.metrics:
            raise metrics_lib.MetricError(
                f"{data}: task {record.task} names unknown metric {unknown[0] if unknown else None!r}"
                f" (known: {', '.join(METRICS)})")
        if record.metric == RANK_CLASSIFICATION and not record.options:
            raise UsageError(f"{data}: {record.id} is scored by rank classification but has no options")
        by_example.setdefault((record.task, record.id), []).append(record.template)
    for (task, example_id), got in by_example.items():
        if sorted(got) != templates.get(task):
            raise UsageError(f"{data}: {example_id} has templates {sorted(got)}, the manifest's forward templates of"
                             f" {task} are {templates.get(task)}")
    kept: dict = {}
    for task, example_id in sorted(by_example):
        ids = kept.setdefault(task, [])
        if limit is None or len(ids) < limit:
            ids.append(example_id)
    keep = {(task, i) for task, ids in kept.items() for i in ids}
    chosen = sorted((r for r in records if (r.task, r.id) in keep), key=lambda r: (r.task, r.id, r.template))
    return EvalSet(manifest=manifest, records=chosen, max_target_tokens=int(manifest["config"]["max_target_tokens"]),
                   examples={task: len(ids) for task, ids in sorted(kept.items())})


def check_tokenizer(checkpoint: str, data: str, manifest: dict) -> None:
    """The checkpoint's tokenizer must be the one the split was tokenized with."""
    want = manifest["tokenizer"]["sha256"]
    trained = read_lineage(checkpoint)["data"]["tokenizer_sha256"]
    path = os.path.join(checkpoint, TOKENIZER)
    if not os.path.exists(path):
        raise UsageError(f"{checkpoint}: no {TOKENIZER}")
    with open(path, "rb") as handle:
        own = sha256_of(handle)[1]
    if own != want or trained != want:
        raise UsageError(f"{checkpoint} was trained with another tokenizer than {data} was tokenized with (sha256)")


def option_scores(gen, records: list, max_target_tokens: int, batch_size: int) -> list:
    """Per record, ``{option: log-probability of its tokens + end-of-text given the input}``."""
    eot = gen.tokenizer.eot_id
    pairs, owners = [], []
    for index, record in enumerate(records):
        for option in record.options:
            pairs.append((record.input_ids, gen.tokenizer.encode(option)[:max_target_tokens] + [eot]))
            owners.append((index, option))
    scores = [dict() for _ in records]
    for (index, option), (logp, _) in zip(owners, gen.continuation_logprobs(pairs, batch_size)):
        scores[index][option] = logp
    return scores


def rank_prediction(record: EvalRecord, scores: dict) -> str:
    """The option with the highest score; the first of equal ones."""
    best = record.options[0]
    for option in record.options[1:]:
        if scores[option] > scores[best]:
            best = option
    return best


def check_lengths(gen, records: list, max_target_tokens: int) -> None:
    longest = max((len(r.input_ids) for r in records), default=0)
    if longest + max_target_tokens + 1 > gen.max_positions:
        raise UsageError(f"an input of {longest} tokens + {max_target_tokens} target tokens + end-of-text does not fit"
                         f" the model's {gen.max_positions} positions")


def predict(gen, eval_set: EvalSet, batch_size: int) -> list:
    """One prediction row per record (in the records' order)."""
    records = eval_set.records
    check_lengths(gen, records, eval_set.max_target_tokens)
    ranked = [r for r in records if r.metric == RANK_CLASSIFICATION]
    generated = [r for r in records if r.metric != RANK_CLASSIFICATION]
    out = {}
    for record, scores in zip(ranked, option_scores(gen, ranked, eval_set.max_target_tokens, batch_size)):
        out[(record.id, record.template)] = {"prediction": rank_prediction(record, scores), "option_scores": scores}
    texts = gen.greedy([r.input_ids for r in generated], eval_set.max_target_tokens, batch_size)
    for record, ids in zip(generated, texts):
        out[(record.id, record.template)] = {"prediction": gen.tokenizer.decode(ids)}
    rows = []
    for record in records:
        scored = out[(record.id, record.template)]
        scores = {m: metrics_lib.score(m, scored["prediction"], record.references) for m in record.metrics}
        row = {"task": record.task, "cluster": record.cluster, "id": record.id, "template": record.template,
               "metric": record.metric, "prediction": scored["prediction"], "references": list(record.references),
               "score": scores[record.metric], "scores": scores}
        if "option_scores" in scored:
            row["option_scores"] = scored["option_scores"]  # in the options' order
        rows.append(row)
    return rows


def summarize(rows: list, eval_set: EvalSet) -> dict:
    """Per task: per template ``corpus_score`` of each metric, mean and best over templates; per cluster
    the mean of its tasks' primary ``mean``."""
    groups: dict = {}
    for row, record in zip(rows, eval_set.records):
        groups.setdefault(record.task, {"cluster": record.cluster, "metrics": record.metrics, "templates": {}})
        groups[record.task]["templates"].setdefault(record.template, []).append((row["prediction"], record.references))
    tasks, clusters = {}, {}
    for task, group in sorted(groups.items()):
        per_metric = {}
        for metric in group["metrics"]:
            scores = {str(t): metrics_lib.corpus_score(metric, [p for p, _ in items], [r for _, r in items])
                      for t, items in sorted(group["templates"].items())}
            values = list(scores.values())
            per_metric[metric] = {"templates": scores, "mean": sum(values) / len(values), "best": max(values)}
        primary = per_metric[group["metrics"][0]]
        tasks[task] = {"metric": group["metrics"][0], "cluster": group["cluster"], "templates": primary["templates"],
                       "mean": primary["mean"], "best": primary["best"], "examples": eval_set.examples[task],
                       "metrics": per_metric}
        clusters.setdefault(group["cluster"], []).append(primary["mean"])
    return {"tasks": tasks, "clusters": {c: sum(v) / len(v) for c, v in sorted(clusters.items())}}


def evaluate(checkpoint: str, data: str, *, limit=None, device: str = "auto", batch_size: int = 16,
             predictions=None) -> dict:
    """Score ``checkpoint`` on the split ``data``'s evaluation set; the results dict (see the module
    docstring), also written as JSON lines to ``predictions`` when given."""
    from training.eval.generate import Generator

    eval_set = load_eval_set(data, limit)
    check_tokenizer(checkpoint, data, eval_set.manifest)
    gen = Generator(checkpoint, device)
    rows = predict(gen, eval_set, batch_size)
    if predictions:
        with open(predictions, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    manifest = eval_set.manifest
    return {**summarize(rows, eval_set), "lineage": lineage_chain(checkpoint), "checkpoint": checkpoint,
            "data": {"path": data, "version": dv.version_label(manifest),
                     "manifest_fingerprint": dv.manifest_fingerprint(manifest)},
            "limit": limit}


def summary(results: dict) -> dict:
    """What the command prints last: the clusters' scores and each task's metric, mean, best and examples."""
    return {"clusters": results["clusters"],
            "tasks": {t: {k: v[k] for k in ("metric", "mean", "best", "examples")} for t, v in results["tasks"].items()}}


def main(argv=None) -> dict:
    args = parse_args(argv)
    results = evaluate(args.checkpoint, args.data, limit=args.limit, device=args.device,
                       batch_size=args.batch_size, predictions=args.predictions)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
        handle.write("\n")
    print(json.dumps(summary(results), sort_keys=True))
    sys.stdout.flush()
    return results


def run(argv=None) -> int:
    return run_main(main, argv, errors=(metrics_lib.MetricError,))


if __name__ == "__main__":
    raise SystemExit(run())
