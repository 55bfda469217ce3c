"""Instruction-tuning mixtures the FLAN way: task registry -> packed streams, per held-out split.

    python -m pipelines.instruct --tasks REGISTRY --output ROOT/instruct/VERSION --tokenizer MODEL.model \
        [--holdout_cluster NAME | --holdout_clusters A,B,C [--cluster_ladder] | --all_holdouts] \
        [--max_examples_per_task N] [--mixing_cap N] [--mixture_size N] [--seed S] [--write_examples] \
        [Beam options]

Stages: read sources -> render (template by hash) -> decontaminate training examples against every
evaluation split, HumanEval and MTPB -> cap per task -> tokenize -> per split: mix (capped
examples-proportional) -> global shuffle -> pack with segment ids -> write shards, and the held-out
tasks' evaluation set; then the driver publishes the version, ``manifest.json`` last.

A version holds one split (the whole mixture, or the one leaving ``--holdout_cluster`` or
``--holdout_clusters`` out) in its root, or with ``--all_holdouts`` one complete split per subfolder
``holdout-<cluster>/`` (shards, ``eval/``, its own ``manifest.json``: what a training job points
at) and a root manifest that lists the splits with their manifests' sha256 and has no shards of its
own. ``--cluster_ladder`` (FLAN's cluster-count ablation) writes ``clusters-<k>/`` the same way:
split k trains on the first k of the other trainable clusters (``schemas.instruct.ladder_order``),
and every split holds out the same clusters and writes the same evaluation set. Every split comes from one job
and one staging folder, so the version (all splits) is published at once and is immutable as a
whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys

import apache_beam as beam

from pipelines import fingerprints, flags, mono, versions
from pipelines.corpus import emptied_by
from pipelines.driver import ArgumentParser, UsageError, comma_list, parse_pipeline_args, pipeline_options
from pipelines.driver import positive_int
from pipelines.driver import require_file, run_main
from pipelines.manifests import file_sha256, stream_sections
from pipelines.run import RUN, Run
from schemas import instruct as schema
from schemas.files import join
from transforms.curation.github import FIRST_UNREADABLE
from transforms.decontamination import Decontaminate
from transforms.instruct.examples import ReadAndRender
from transforms.instruct.mixing import CapPerTask
from transforms.instruct.splits import StreamSettings, WriteSplit, split_counts
from transforms.instruct.streams import TokenizeExamples
from transforms.instruct.task_sources import eval_texts, load_checked_registry, source_sizes, write_eval_texts
from transforms.stats.run_stats import ArchiveFingerprintFn, WriteJson, read_json

DATASET = "instruct"
# The flags that set each stage, named when a stage removes everything (refuse_empty).
STAGE_FLAGS = (("input", ("tasks",)), ("instruct_cap", ("max_examples_per_task",)),
               ("decontaminate", ("decontamination_ngram", "decontamination_min_coverage")))
EVAL_TEXTS = "eval_texts.jsonl"


def build_parser():
    """Every flag of the pipeline (the Flex Template's parameters are generated from it)."""
    parser = ArgumentParser(prog="sluice instruct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", required=True, help="Task registry (YAML or JSON; any fsspec path).")
    holdout = parser.add_mutually_exclusive_group()
    holdout.add_argument("--holdout_cluster", help="Leave this cluster (and its close clusters) out of training.")
    holdout.add_argument("--holdout_clusters", type=comma_list,
                         help="Leave these clusters (comma-separated, each with its close clusters) out of"
                              " training together and evaluate their tasks.")
    holdout.add_argument("--all_holdouts", action="store_true",
                         help="Build every leave-one-cluster-out split, each in holdout-<cluster>/ of the"
                              " one version.")
    parser.add_argument("--cluster_ladder", action="store_true",
                        help="With --holdout_clusters (or --holdout_cluster): one split clusters-<k>/ per k ="
                             " 1..K, training on the first k of the K other trainable clusters (most"
                             " trainable tasks first, ties in registry order); all hold out the same clusters"
                             " and share one evaluation set.")
    parser.add_argument("--max_examples_per_task", type=positive_int, default=30000,
                        help="Training examples kept per task, by hash rank (FLAN: 30,000).")
    parser.add_argument("--mixing_cap", type=positive_int, default=3000,
                        help="Examples-proportional mixing cap K: rate_t = min(n_t, K) / sum_j min(n_j, K).")
    parser.add_argument("--mixture_size", type=positive_int, default=None,
                        help="Training examples per split (default: sum_j min(n_j, K), no repeats).")
    parser.add_argument("--max_input_tokens", type=positive_int, default=1024)
    parser.add_argument("--max_target_tokens", type=positive_int, default=256)
    parser.add_argument("--eval_shards", type=positive_int, default=1)
    parser.add_argument("--write_examples", action="store_true",
                        help="Write every rendered example as Parquet under examples/ (audit).")
    flags.add_stream_flags(parser)
    flags.add_decontamination_flags(parser)
    mono.add_fetch_flags(parser)  # code tasks read the archives of a Mono manifest, with Mono's gate
    flags.add_allow_empty_flag(parser)
    flags.add_if_changed_flag(parser)
    return parser


def parse_args(argv):
    args, beam_args = parse_pipeline_args(build_parser(), argv)
    flags.check_stream_flags(args)
    given = sys.argv[1:] if argv is None else argv
    if any(a == "--pack_tail" or a.startswith("--pack_tail=") for a in given) and args.pack_tail != "pad":
        raise UsageError("--pack_tail: instruct rows hold whole examples and are always padded (pad)")
    args.pack_tail = "pad"  # rows hold whole examples and are padded; nothing is dropped
    if args.cluster_ladder and args.all_holdouts:
        raise UsageError("--cluster_ladder: not with --all_holdouts; every split of a ladder holds out the same"
                         " clusters, named by --holdout_clusters")
    if args.cluster_ladder and not (args.holdout_clusters or args.holdout_cluster):
        raise UsageError("--cluster_ladder: name the held-out clusters with --holdout_clusters (or"
                         " --holdout_cluster)")
    if args.seq_len < args.max_input_tokens + args.max_target_tokens + 1:
        raise UsageError(
            f"--seq_len: {args.seq_len} cannot hold an example of --max_input_tokens {args.max_input_tokens}"
            f" + --max_target_tokens {args.max_target_tokens} + end-of-text")
    return args, beam_args


def load_registry(args) -> schema.Registry:
    require_file(args.tasks, "--tasks")
    try:
        return load_checked_registry(args.tasks)
    except schema.RegistryError as err:
        raise UsageError(f"--tasks: {err}") from None


def run_config(args, registry: schema.Registry, split: schema.Split | None, decontamination,
               splits: list | None = None) -> dict:
    """One split's config, or (``split`` None) the --all_holdouts or --cluster_ladder version's,
    which names its splits."""
    if split is not None:
        chosen = {"split": split.name, "holdout_cluster": split.holdout, "holdout_clusters": list(split.holdouts),
                  "excluded_clusters": list(split.excluded_clusters)}
        if split.train_clusters is not None:
            chosen["train_clusters"] = list(split.train_clusters)
    elif args.cluster_ladder:
        chosen = {"split": "cluster_ladder", "splits": [s.name for s in splits], "ladder": ladder_section(splits)}
    else:
        chosen = {"split": "all_holdouts", "splits": [s.name for s in splits]}
    return {
        "tasks": args.tasks, "registry_sha256": registry.sha256, **chosen,
        "max_examples_per_task": args.max_examples_per_task, "mixing_cap": args.mixing_cap,
        "mixture_size": args.mixture_size, "max_input_tokens": args.max_input_tokens,
        "max_target_tokens": args.max_target_tokens, "eval_shards": args.eval_shards,
        "decontamination": decontamination, **flags.stream_config(args), "allow_empty": args.allow_empty,
        "code_fetch": dataclasses.asdict(mono.policy_of(args)),
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




def nested(args) -> bool:
    """Whether the version holds its splits in subfolders under an index (--all_holdouts, --cluster_ladder)."""
    return bool(args.all_holdouts or args.cluster_ladder)


def split_output(run: Run, args, split: schema.Split) -> str:
    """Where a split is written: the version's (staging) root, or its subfolder with --all_holdouts
    or --cluster_ladder."""
    return join(run.staging, split.name) if nested(args) else run.staging


def split_stats_dir(run: Run, args, split: schema.Split) -> str:
    return join(split_output(run, args, split), versions.RUN_STATS_DIR)


def plan_splits(registry: schema.Registry, args) -> list:
    """--holdout_cluster NAME is --holdout_clusters NAME: one code path."""
    flag = "--holdout_clusters" if args.holdout_clusters else "--holdout_cluster"
    holdouts = args.holdout_clusters or ((args.holdout_cluster,) if args.holdout_cluster else ())
    try:
        schema.check_holdouts(registry, holdouts)
    except schema.RegistryError as err:
        raise UsageError(f"{flag}: {err}") from None
    try:
        return schema.plan_splits(registry, holdouts, args.all_holdouts, args.cluster_ladder)
    except schema.RegistryError as err:
        raise UsageError(f"--cluster_ladder: {err}") from None


def ladder_section(splits: list) -> dict:
    """What every split of a cluster ladder shares: the held-out clusters and the order the
    training clusters are added in (its last split trains on all of them)."""
    return {"order": list(splits[-1].train_clusters), "holdout_clusters": list(splits[0].holdouts),
            "excluded_clusters": list(splits[0].excluded_clusters)}


def with_eval_texts(run: Run, registry: schema.Registry, decontamination: dict | None) -> dict | None:
    """Training examples are decontaminated against every evaluation split too: their texts are
    written under the run's statistics and added to the benchmarks."""
    if decontamination is None:
        return None
    texts_path = run.stats_path(EVAL_TEXTS)
    write_eval_texts(texts_path, eval_texts(registry))
    return dict(decontamination, extra_paths=[*decontamination["extra_paths"], texts_path])


def build_graph(pipeline, run: Run, args, registry, splits: list, decontamination, tokenizer, fetch) -> bool:
    """Read, render, decontaminate, cap and tokenize once; then one ``WriteSplit`` per split.
    Returns whether code tasks read archives (their fingerprint and loss gate go in the manifest)."""
    examples, code_sources = pipeline | "ReadAndRender" >> ReadAndRender(registry, args.seed, fetch)
    train = examples | "TrainSplit" >> beam.Filter(_is_split, "train")
    held = examples | "EvalSplit" >> beam.Filter(_is_split, "eval")
    if decontamination is not None:
        train, _ = train | "Decontaminate" >> Decontaminate(**decontamination)
    capped, smallest = train | "CapPerTask" >> CapPerTask(args.seed, args.max_examples_per_task)
    lengths = (args.tokenizer, args.max_input_tokens, args.max_target_tokens)
    streams = {"train": capped | "Tokenize" >> TokenizeExamples(*lengths),
               "eval": held | "TokenizeEval" >> TokenizeExamples(*lengths)}
    settings = StreamSettings(
        seq_len=args.seq_len, num_shards=args.num_shards, eval_shards=args.eval_shards, seed=args.seed,
        mixing_cap=args.mixing_cap, mixture_size=args.mixture_size, eot_id=tokenizer.eot_id,
        pad_id=tokenizer.pad_id, write_examples=args.write_examples, per_split_stages=nested(args))
    for i, split in enumerate(splits):
        streams | f"S{i}" >> WriteSplit(split, split_output(run, args, split), split_stats_dir(run, args, split),
                                        smallest, settings)
    if code_sources:
        archives = [source.archives for source in code_sources]
        ((archives | "AllArchives" >> beam.Flatten()) | "Fingerprint" >> beam.CombineGlobally(ArchiveFingerprintFn())
         | "WriteArchiveStats" >> WriteJson(run.stats_path("archives.json")))
        ([source.unreadable for source in code_sources] | "AllUnreadable" >> beam.Flatten()
         | "UnreadableNames" >> beam.FlatMap(iter) | "FirstUnreadable" >> beam.combiners.Top.Smallest(FIRST_UNREADABLE)
         | "WriteUnreadable" >> WriteJson(run.stats_path(mono.UNREADABLE_STATS)))
    return bool(code_sources)


def by_shard(path: str) -> list:
    return sorted(read_json(path), key=lambda s: s["shard"])


def split_fields(run: Run, args, registry, split: schema.Split) -> dict:
    """The manifest sections that are a split's own: shards, held-out clusters, mixture, eval set."""
    stats = split_stats_dir(run, args, split)
    eval_stats = by_shard(join(stats, "eval.json")) if split.eval_tasks else []
    eval_tasks: dict = {}
    for shard in eval_stats:
        for task, n in shard["tasks"].items():
            eval_tasks[task] = eval_tasks.get(task, 0) + n
    return dict(
        shards=by_shard(join(stats, "shards.json")),
        holdout={"cluster": split.holdout, "clusters": list(split.holdouts),
                 "excluded_clusters": list(split.excluded_clusters),
                 "train_tasks": list(split.train_tasks), "eval_tasks": list(split.eval_tasks)},
        **({} if split.train_clusters is None else {"ladder": {
            "k": split.k, "train_clusters": list(split.train_clusters),
            "order": list(schema.ladder_order(registry, split.excluded_clusters))}}),
        mixture={"max_examples_per_task": args.max_examples_per_task, "mixing_cap": args.mixing_cap,
                 **mixture_section(registry, read_json(join(stats, "plan.json")),
                                   read_json(join(stats, "realised.json")))},
        eval={"examples": sum(s["examples"] for s in eval_stats), "tasks": eval_tasks,
              # how each held-out task is scored, and the forward templates each example is rendered with
              "metrics": {t: list(registry.task(t).metrics) for t in split.eval_tasks},
              "templates": {t: list(registry.task(t).forward_templates) for t in split.eval_tasks},
              "files": [{k: s[k] for k in ("path", "examples", "bytes", "sha256")} for s in eval_stats]},
    )


def refuse_empty(args, split: schema.Split, fields: dict) -> None:
    """A split whose mixture packed no sequence is not published (one line naming the split and
    the stage that removed everything), unless --allow_empty."""
    if args.allow_empty or sum(shard["records"] for shard in fields["shards"]):
        return
    cause = emptied_by(fields["counts"], args, dict(STAGE_FLAGS))
    if cause.startswith("no record was read"):  # the shared stages kept examples, none of this split's
        cause = f"its training tasks ({', '.join(split.train_tasks) or 'none'}) gave no example to mix"
    raise UsageError(f"nothing to publish: split {split.name}: {cause}; pass --allow_empty to publish an"
                     " empty version")


def publish(run: Run, args, registry, splits: list, decontamination, shared: dict) -> dict:
    """One split in the version's root, or (--all_holdouts, --cluster_ladder) every split's manifest
    in its folder under an index manifest that lists them; the version appears at once either way."""
    manifests = {}
    for split in splits:
        fields = dict(shared, dataset=DATASET, config=run_config(args, registry, split, decontamination),
                      counts=split_counts(shared["counts"], split.name), **split_fields(run, args, registry, split))
        refuse_empty(args, split, fields)
        if not nested(args):
            return {split.name: run.publish(run.manifest(**fields))}
        versions.remove_tree(split_stats_dir(run, args, split))
        manifests[split.name] = run.manifest(split=split.name, **fields)
    ladder = {"ladder": ladder_section(splits)} if args.cluster_ladder else {}
    top = run.manifest(**shared, dataset=DATASET, config=run_config(args, registry, None, decontamination, splits),
                       shards=[], splits=splits_section(manifests), **ladder)
    return {"version": run.publish(top, nested=manifests), **manifests}


def main(argv=None, mode=RUN):
    args, beam_args = parse_args(argv)
    registry = load_registry(args)
    splits = plan_splits(registry, args)
    decontamination = flags.decontamination_config(args)
    tokenizer = flags.stream_tokenizer(args)  # checked before the output is touched
    fetch = mono.fetch_policy(args)  # the token's source too
    found = run_fingerprints(args, registry, splits, decontamination)
    fingerprints.gate(args, args.output, found, mode)
    with Run(args.output, mode, found) as run:
        decontamination = with_eval_texts(run, registry, decontamination)
        pipeline = beam.Pipeline(options=pipeline_options(beam_args))
        has_archives = build_graph(pipeline, run, args, registry, splits, decontamination, tokenizer, fetch)
        counts = run.counts(run.execute(pipeline))
        inputs = {"registry": file_sha256(args.tasks), "sources": source_sizes(registry)}
        if has_archives:  # Mono's loss gate over the code tasks' archives, before anything is published
            archives = read_json(run.stats_path("archives.json"))
            loss = mono.check_unreadable(args, counts, archives, read_json(run.stats_path(mono.UNREADABLE_STATS)))
            inputs["code_archives"] = {**archives, "loss_gate": loss}
        sections = stream_sections(args, tokenizer, {"examples": "examples/" if args.write_examples else None})
        sections["stream"]["segment_ids"] = True
        return publish(run, args, registry, splits, decontamination, dict(counts=counts, inputs=inputs, **sections))


def run_fingerprints(args, registry, splits: list, decontamination) -> fingerprints.Fingerprints:
    """The version's config (every split's, with --all_holdouts or --cluster_ladder) without paths; the registry, the
    task sources' files and extra benchmarks as inputs."""
    config = (run_config(args, registry, None, decontamination, splits) if nested(args)
              else run_config(args, registry, splits[0], decontamination))
    inputs = {**fingerprints.instruct_inputs(registry, args.tasks),
              "benchmarks": fingerprints.benchmark_inputs(decontamination)}
    return fingerprints.fingerprints(DATASET, config, inputs, config["tokenizer"],
                                     drop=("tasks", "tokenizer", "decontamination.extra_paths"))


def splits_section(manifests: dict) -> dict:
    """The --all_holdouts or --cluster_ladder version's index: per split its folder, manifest sha256,
    held-out clusters, (a ladder's) k and training clusters, totals and realised mixture (so list,
    diff and the report need only this manifest)."""
    out = {}
    for name, manifest in sorted(manifests.items()):
        out[name] = {
            "path": name, "manifest_sha256": hashlib.sha256(versions.json_bytes(manifest)).hexdigest(),
            "holdout": manifest["holdout"]["cluster"], "holdout_clusters": manifest["holdout"]["clusters"],
            "excluded_clusters": manifest["holdout"]["excluded_clusters"],
            **({"k": manifest["ladder"]["k"], "train_clusters": manifest["ladder"]["train_clusters"]}
               if "ladder" in manifest else {}),
            "totals": manifest["totals"], "eval_examples": manifest["eval"]["examples"],
            "mixture": {task: entry["realised"] for task, entry in manifest["mixture"]["tasks"].items()},
        }
    return out


def run(argv=None, mode=RUN) -> int:
    return run_main(main, argv, mode=mode)


if __name__ == "__main__":
    raise SystemExit(run())
