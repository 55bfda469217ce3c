"""Instruction-tuning mixtures the FLAN way: task registry -> packed streams, per held-out split.

    python -m pipelines.instruct --tasks REGISTRY --output ROOT/instruct/VERSION --tokenizer MODEL.model \
        [--holdout_cluster NAME | --all_holdouts] [--max_examples_per_task N] [--mixing_cap N] \
        [--mixture_size N] [--seed S] [--write_examples] [Beam options]

Stages: read sources -> render (template by hash) -> decontaminate training examples against every
evaluation split, HumanEval and MTPB -> cap per task -> tokenize -> per split: mix (capped
examples-proportional) -> global shuffle -> pack with segment ids -> write shards, and the held-out
tasks' evaluation set; then the driver publishes the version, ``manifest.json`` last.

A version holds one split (the whole mixture, or ``--holdout_cluster``'s) in its root, or with
``--all_holdouts`` one complete split per subfolder ``holdout-<cluster>/`` (shards, ``eval/``,
its own ``manifest.json``: what a training job points at) and a root manifest that lists the
splits with their manifests' sha256 and has no shards of its own. Every split comes from one job
and one staging folder, so the version (all splits) is published at once and is immutable as a
whole.
"""

from __future__ import annotations

import hashlib
import json
import sys

import apache_beam as beam

from pipelines import common, flags
from schemas import instruct as schema
from transforms.decontamination import MIN_ITEM_TOKENS, Decontaminate
from transforms.decontamination import tokens as decontamination_tokens
from transforms.instruct.examples import ReadAndRender
from transforms.instruct.mixing import CapPerTask, MixSplit
from transforms.instruct.streams import EVAL_STAGE, PACK_STAGE, TokenizeExamples, WriteEvalSet, WriteMixture
from transforms.stats.side_outputs import WriteExamples
from transforms.stats.run_stats import ArchiveFingerprintFn, WriteJson, read_json

DATASET = "instruct"
EVAL_TEXTS = "eval_texts.jsonl"


def build_parser():
    """Every flag of the pipeline (the Flex Template's parameters are generated from it)."""
    parser = common.ArgumentParser(prog="sluice instruct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", required=True, help="Task registry (YAML or JSON; any fsspec path).")
    holdout = parser.add_mutually_exclusive_group()
    holdout.add_argument("--holdout_cluster", help="Leave this cluster (and its close clusters) out of training.")
    holdout.add_argument("--all_holdouts", action="store_true",
                         help="Build every leave-one-cluster-out split, each in holdout-<cluster>/ of the"
                              " one version.")
    parser.add_argument("--max_examples_per_task", type=common.positive_int, default=30000,
                        help="Training examples kept per task, by hash rank (FLAN: 30,000).")
    parser.add_argument("--mixing_cap", type=common.positive_int, default=3000,
                        help="Examples-proportional mixing cap K: rate_t = min(n_t, K) / sum_j min(n_j, K).")
    parser.add_argument("--mixture_size", type=common.positive_int, default=None,
                        help="Training examples per split (default: sum_j min(n_j, K), no repeats).")
    parser.add_argument("--max_input_tokens", type=common.positive_int, default=1024)
    parser.add_argument("--max_target_tokens", type=common.positive_int, default=256)
    parser.add_argument("--eval_shards", type=common.positive_int, default=1)
    parser.add_argument("--write_examples", action="store_true",
                        help="Write every rendered example as Parquet under examples/ (audit).")
    flags.add_stream_flags(parser)
    flags.add_decontamination_flags(parser)
    return parser


def parse_args(argv):
    args, beam_args = build_parser().parse_known_args(argv)
    flags.check_stream_flags(args)
    given = sys.argv[1:] if argv is None else argv
    if any(a == "--pack_tail" or a.startswith("--pack_tail=") for a in given) and args.pack_tail != "pad":
        raise common.UsageError("--pack_tail: instruct rows hold whole examples and are always padded (pad)")
    args.pack_tail = "pad"  # rows hold whole examples and are padded; nothing is dropped
    args.write_documents = args.write_rejects = False  # the shared manifest sections read these
    if args.seq_len < args.max_input_tokens + args.max_target_tokens + 1:
        raise common.UsageError(
            f"--seq_len: {args.seq_len} cannot hold an example of --max_input_tokens {args.max_input_tokens}"
            f" + --max_target_tokens {args.max_target_tokens} + end-of-text")
    return args, beam_args


def load_registry(args) -> schema.Registry:
    common.require_file(args.tasks, "--tasks")
    try:
        return schema.load_registry(args.tasks)
    except schema.RegistryError as err:
        raise common.UsageError(f"--tasks: {err}") from None


def eval_texts(registry: schema.Registry) -> list:
    """``{id, text}`` for each field of every evaluation example of the file-based tasks.

    Decontamination matches content, not template wording, and one item per field (a question, a
    passage) matches a training input that holds it whatever surrounds it; fields too short to be
    evidence (a label, a short answer: under the matcher's 8 words) are left out. Evaluation splits are small
    (benchmarks), so the driver reads them, as it loads HumanEval; code tasks' evaluation functions
    are split off by hash and not listed.
    """
    items = []
    for task in registry.tasks:
        if "eval" not in task.source.splits or task.source.extract:
            continue
        if task.source.format == "hf_disk":
            records = schema.hf_records(task.source.path, task.source.splits["eval"])
        else:
            reader = schema.jsonl_records if task.source.format == "jsonl" else schema.parquet_records
            records = (r for path in schema.expand_paths(task.source.splits["eval"]) for r in reader(path))
        for row_id, record in records:
            try:
                fields = schema.example_fields(task, record)
            except schema.FieldError:
                continue
            example_id = str(record.get(task.source.id_field, row_id)) if task.source.id_field else row_id
            for name, value in fields.items():
                text = value if isinstance(value, str) else "\n".join(value)
                if len(decontamination_tokens(text)) >= MIN_ITEM_TOKENS:  # shorter ones never match
                    items.append({"id": f"eval:{task.name}/{example_id}:{name}", "text": text})
    return items


def write_eval_texts(path: str, items: list) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")


def run_config(args, registry: schema.Registry, split: schema.Split | None, decontamination,
               splits: list | None = None) -> dict:
    """One split's config, or (``split`` None) the --all_holdouts version's, which names its splits."""
    if split is not None:
        chosen = {"split": split.name, "holdout_cluster": split.holdout,
                  "excluded_clusters": list(split.excluded_clusters)}
    else:
        chosen = {"split": "all_holdouts", "splits": [s.name for s in splits]}
    return {
        "tasks": args.tasks, "registry_sha256": registry.sha256, **chosen,
        "max_examples_per_task": args.max_examples_per_task, "mixing_cap": args.mixing_cap,
        "mixture_size": args.mixture_size, "max_input_tokens": args.max_input_tokens,
        "max_target_tokens": args.max_target_tokens, "eval_shards": args.eval_shards,
        "decontamination": decontamination, **flags.stream_config(args),
    }


def mixture_section(registry, plan: dict, realised: dict) -> dict:
    """Per task: cluster, available examples, FLAN rate, planned and realised examples and share."""
    total = sum(realised.values())
    tasks = {}
    for name, entry in sorted(plan.items()):
        got = realised.get(name, 0)
        tasks[name] = {"cluster": registry.task(name).cluster, **entry, "realised": got,
                       "realised_proportion": got / total if total else 0.0}
    return {"examples": total, "tasks": tasks}


def _is_split(example, split_name):
    return example.split == split_name


def _in_tasks(tokenized, tasks):
    return tokenized.task in tasks


def source_sizes(registry: schema.Registry) -> list:
    """Path and size of every source file; not hashed, as NL does not hash its inputs (task
    datasets can be large Parquet sets). The registry itself is hashed."""
    from apache_beam.io.filesystems import FileSystems

    paths = sorted({p for t in registry.tasks if t.source.format in ("jsonl", "parquet")
                    for pattern in t.source.splits.values() for p in schema.expand_paths(pattern)})
    return [{"path": p, "bytes": FileSystems.match([p])[0].metadata_list[0].size_in_bytes} for p in paths]


# With --all_holdouts one job writes every split's streams. Their counters carry the split's name
# (``pack@holdout-nli``), so a split's manifest counts its own shards plus the shared stages
# (reading, rendering, capping, tokenizing), and the index manifest counts the whole job.
SPLIT_STAGE = "{stage}@{split}"


def split_stage(args, stage: str, split: schema.Split) -> str:
    return SPLIT_STAGE.format(stage=stage, split=split.name) if args.all_holdouts else stage


def split_counts(counts: dict, split_name: str) -> dict:
    """A split's view of the job's counts: the shared stages, and its own under their plain names."""
    own = {}
    for stage, values in counts.items():
        base, marker, name = stage.partition("@")
        if not marker:
            own.setdefault(stage, values)
        elif name == split_name:
            own[base] = values
    return dict(sorted(own.items()))


def split_output(args, split: schema.Split) -> str:
    """Where a split is written: the version's (staging) root, or its subfolder with --all_holdouts."""
    return common.join(args.output, split.name) if args.all_holdouts else args.output


def main(argv=None):
    args, beam_args = parse_args(argv)
    registry = load_registry(args)
    try:
        splits = schema.plan_splits(registry, args.holdout_cluster, args.all_holdouts)
    except schema.RegistryError as err:
        raise common.UsageError(str(err)) from None
    decontamination = flags.decontamination_config(args)
    tokenizer, stats_dir, started = flags.start_run(args)  # args.output is now the staging folder
    if decontamination is not None:
        texts_path = common.join(stats_dir, EVAL_TEXTS)
        write_eval_texts(texts_path, eval_texts(registry))
        decontamination = dict(decontamination, extra_paths=[*decontamination["extra_paths"], texts_path])

    pipeline = beam.Pipeline(options=common.pipeline_options(beam_args))
    examples, archives = pipeline | "ReadAndRender" >> ReadAndRender(registry, args.seed)
    train = examples | "TrainSplit" >> beam.Filter(_is_split, "train")
    held = examples | "EvalSplit" >> beam.Filter(_is_split, "eval")
    if decontamination is not None:
        train, _ = train | "Decontaminate" >> Decontaminate(**decontamination)
    capped, smallest = train | "CapPerTask" >> CapPerTask(args.seed, args.max_examples_per_task)
    tokenized = capped | "Tokenize" >> TokenizeExamples(args.tokenizer, args.max_input_tokens,
                                                        args.max_target_tokens)
    eval_tokenized = held | "TokenizeEval" >> TokenizeExamples(args.tokenizer, args.max_input_tokens,
                                                               args.max_target_tokens)
    for i, split in enumerate(splits):
        folder = split_output(args, split)
        run_dir = common.join(folder, common.RUN_STATS_DIR)
        label = f"S{i}"
        mixture, plan = tokenized | f"{label}Mix" >> MixSplit(
            split.train_tasks, smallest, args.seed, args.mixing_cap, args.mixture_size)
        plan | f"{label}WritePlan" >> WriteJson(common.join(run_dir, "plan.json"))
        (mixture | f"{label}TaskOf" >> beam.Map(lambda t: (t.task, 1))
         | f"{label}PerTask" >> beam.CombinePerKey(sum)
         | f"{label}AllTasks" >> beam.combiners.ToList()
         | f"{label}Sorted" >> beam.Map(lambda pairs: dict(sorted(pairs)))
         | f"{label}WriteRealised" >> WriteJson(common.join(run_dir, "realised.json")))
        mixture | f"{label}Write" >> WriteMixture(
            folder, seq_len=args.seq_len, num_shards=args.num_shards, seed=args.seed,
            eot_id=tokenizer.eot_id, pad_id=tokenizer.pad_id, stats_path=common.join(run_dir, "shards.json"),
            stage=split_stage(args, PACK_STAGE, split))
        audit = [mixture]
        if split.eval_tasks:
            eval_set = eval_tokenized | f"{label}EvalTasks" >> beam.Filter(_in_tasks, set(split.eval_tasks))
            eval_set | f"{label}WriteEval" >> WriteEvalSet(
                common.join(folder, "eval"), num_shards=args.eval_shards, seed=args.seed,
                stats_path=common.join(run_dir, "eval.json"), stage=split_stage(args, EVAL_STAGE, split))
            audit.append(eval_set)
        if args.write_examples:
            audit | f"{label}Audit" >> beam.Flatten() | f"{label}WriteExamples" >> WriteExamples(folder)
    if archives:
        ((archives | "AllArchives" >> beam.Flatten()) | "Fingerprint" >> beam.CombineGlobally(ArchiveFingerprintFn())
         | "WriteArchiveStats" >> WriteJson(common.join(stats_dir, "archives.json")))
    result = common.run_pipeline(pipeline)
    counts = common.counts_from_metrics(result)

    inputs = {"registry": common.file_sha256(args.tasks), "sources": source_sizes(registry)}
    if archives:
        inputs["code_archives"] = read_json(common.join(stats_dir, "archives.json"))
    sections = flags.stream_manifest_sections(args, tokenizer)
    sections["stream"]["segment_ids"] = True
    sections["side_outputs"] = {"examples": "examples/" if args.write_examples else None}
    manifests = {}
    for split in splits:
        folder = split_output(args, split)
        run_dir = common.join(folder, common.RUN_STATS_DIR)
        shards = sorted(read_json(common.join(run_dir, "shards.json")), key=lambda s: s["shard"])
        eval_stats = (sorted(read_json(common.join(run_dir, "eval.json")), key=lambda s: s["shard"])
                      if split.eval_tasks else [])
        eval_tasks: dict = {}
        for shard in eval_stats:
            for task, n in shard["tasks"].items():
                eval_tasks[task] = eval_tasks.get(task, 0) + n
        fields = dict(
            dataset=DATASET, started=started, config=run_config(args, registry, split, decontamination),
            counts=split_counts(counts, split.name), inputs=inputs, shards=shards, **sections,
            holdout={"cluster": split.holdout, "excluded_clusters": list(split.excluded_clusters),
                     "train_tasks": list(split.train_tasks), "eval_tasks": list(split.eval_tasks)},
            mixture={"max_examples_per_task": args.max_examples_per_task, "mixing_cap": args.mixing_cap,
                     **mixture_section(registry, read_json(common.join(run_dir, "plan.json")),
                                       read_json(common.join(run_dir, "realised.json")))},
            eval={"examples": sum(s["examples"] for s in eval_stats), "tasks": eval_tasks,
                  "files": [{k: s[k] for k in ("path", "examples", "bytes", "sha256")} for s in eval_stats]},
        )
        if not args.all_holdouts:
            return {split.name: common.publish_manifest(args.output, **fields)}
        common.remove_tree(run_dir)
        manifests[split.name] = common.build_manifest(args.output, split=split.name, **fields)
    top = common.publish_manifest(
        args.output, nested=manifests, dataset=DATASET, started=started,
        config=run_config(args, registry, None, decontamination, splits), counts=counts, inputs=inputs,
        shards=[], **sections, splits=splits_section(manifests))
    return {"version": top, **manifests}


def splits_section(manifests: dict) -> dict:
    """The --all_holdouts version's index: per split its folder, manifest sha256, held-out
    clusters, totals and realised mixture (so list, diff and the report need only this manifest)."""
    out = {}
    for name, manifest in sorted(manifests.items()):
        out[name] = {
            "path": name, "manifest_sha256": hashlib.sha256(common.json_bytes(manifest)).hexdigest(),
            "holdout": manifest["holdout"]["cluster"],
            "excluded_clusters": manifest["holdout"]["excluded_clusters"],
            "totals": manifest["totals"], "eval_examples": manifest["eval"]["examples"],
            "mixture": {task: entry["realised"] for task, entry in manifest["mixture"]["tasks"].items()},
        }
    return out


def run(argv=None) -> int:
    return common.run_main(main, argv)


if __name__ == "__main__":
    raise SystemExit(run())
