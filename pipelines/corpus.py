"""What the three corpus pipelines (Mono, NL, Multi) share after their own curation.

Each corpus reads and curates its documents its own way; from there the sequence is the same:
decontaminate and near-dedup (where configured), tokenize, shuffle, pack and write the streams and
side outputs, run the job, and publish the version with the same manifest sections. ``CorpusRun``
is that sequence, so each pipeline's ``main`` says only what is its own.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines import flags
from pipelines.driver import UsageError, pipeline_options
from pipelines.manifests import NOT_REJECTS, REPOSITORY_STAGES, stages_in_order, stream_sections
from pipelines.run import RUN, Run, RunMode
from transforms.decontamination import Decontaminate
from transforms.dedup.connected_components import convergence
from transforms.dedup.near import STAGE as NEAR_DEDUP_STAGE
from transforms.dedup.near import NearDedup, NearDedupConfig
from transforms.stats.run_stats import read_json
from transforms.stats.side_outputs import WriteDocuments, WriteRejects
from transforms.streams.write_packed_streams import WritePackedStreams

SHARD_STATS = "shards.json"
INPUT = "input"  # the stage_flags key of the flags that choose the input, named when nothing was read


def near_dedup_report(config: NearDedupConfig, counts: dict) -> dict:
    """LSH parameters and the proof of convergence; a run that did not converge is not published."""
    bands, rows = config.bands_rows()
    stage = counts.get(NEAR_DEDUP_STAGE, {})
    report = {"bands": bands, "rows": rows, "components": stage.get("components", 0),
              "removed": stage.get("near_duplicate", 0),
              "connected_components": convergence(stage, config.cc_rounds)}
    if not report["connected_components"]["converged"]:
        raise UsageError(
            f"--cc_rounds: near-dedup's connected components did not converge in {config.cc_rounds}"
            f" rounds (edges rewired per round: {report['connected_components']['rewired_per_round']});"
            " nothing was published: rerun with a larger --cc_rounds"
        )
    return report


def _flag_values(args, flag_names) -> str:
    """``--name value`` for each named flag of ``args`` (lists comma-joined)."""
    def value(v):
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return ", ".join(f"--{name} {value(getattr(args, name))}" for name in flag_names if hasattr(args, name))


def emptied_by(counts: dict, args, stage_flags: dict) -> str:
    """What removed everything, from the run's per-stage counts: the first stage, in pipeline
    order, after which nothing was left, with its reject reasons and the flags that set it
    (``stage_flags``: {stage: flag names}); ``pack`` when every document was kept but no sequence
    was filled (a dropped tail); the input's flags (``stage_flags[INPUT]``) when no stage saw a
    record (an empty input, or a query that selected nothing)."""
    for stage in stages_in_order(counts):
        outcomes = counts[stage]
        if stage == "pack":  # it counts zeros even where no document reached it
            if outcomes.get("documents") and not outcomes.get("sequences"):
                return (f"stage `pack` filled no sequence: all {outcomes.get('dropped_tail_tokens', 0):,}"
                        f" tokens were a dropped tail ({_flag_values(args, ('seq_len', 'pack_tail'))})")
            continue
        if outcomes.get("kept", 0):
            continue
        rejects = {r: n for r, n in outcomes.items() if r not in NOT_REJECTS and n}
        unit = "repositories" if stage in REPOSITORY_STAGES else "documents"
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(rejects.items(), key=lambda i: (-i[1], i[0]))[:3])
        hint = "; ".join(part for part in (reasons, _flag_values(args, stage_flags.get(stage, ()))) if part)
        return f"stage `{stage}` rejected all {sum(rejects.values()):,} {unit}" + (f" ({hint})" if hint else "")
    inputs = _flag_values(args, stage_flags.get(INPUT, ()))
    return "no record was read from the input" + (f" ({inputs})" if inputs else "")


class CorpusRun:
    """One run of a corpus pipeline: the checked tokenizer, the claimed version, the Beam pipeline.

    Used as a context manager (it claims the version on entry, see ``pipelines.run.Run``); the
    tokenizer is checked first, so a bad --tokenizer never touches an existing output.
    """

    def __init__(self, dataset: str, args, beam_args: list, mode: RunMode = RUN, stage_flags: tuple = ()):
        self.dataset = dataset
        # ((stage, flag names), ...): the flags that set a stage, named when it removes everything
        self.stage_flags = dict(stage_flags)
        self.args = args
        self.tokenizer = flags.stream_tokenizer(args)
        self.run = Run(args.output, mode)
        self.pipeline = beam.Pipeline(options=pipeline_options(beam_args))
        self.near_dedup: NearDedupConfig | None = None

    def __enter__(self) -> "CorpusRun":
        self.run.__enter__()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        return self.run.__exit__(kind, error, traceback)

    def stats_path(self, name: str) -> str:
        return self.run.stats_path(name)

    def clean(self, documents, rejects: list, decontamination: dict | None, near_dedup: NearDedupConfig | None):
        """Decontamination, then near-dedup (each when configured): (documents, rejects list).

        Decontaminate first, so a contaminated copy is never the one a near-duplicate cluster keeps.
        """
        rejects = list(rejects)
        if decontamination is not None:
            documents, contaminated = documents | "Decontaminate" >> Decontaminate(**decontamination)
            rejects.append(contaminated)
        if near_dedup is not None:
            self.near_dedup = near_dedup
            documents, near_duplicates = documents | "NearDedup" >> NearDedup(near_dedup)
            rejects.append(near_duplicates)
        return documents, rejects

    def write(self, documents, rejects, prefix_language_tag: bool = False,
              language_stats_path: str | None = None) -> None:
        """Tokenize, shuffle, pack and write the streams, and the Parquet side outputs asked for."""
        args = self.args
        documents | "WriteStreams" >> WritePackedStreams(
            self.run.staging, args.tokenizer, seq_len=args.seq_len, num_shards=args.num_shards,
            seed=args.seed, pack_tail=args.pack_tail, eot_id=self.tokenizer.eot_id, pad_id=self.tokenizer.pad_id,
            stats_path=self.stats_path(SHARD_STATS), prefix_language_tag=prefix_language_tag,
            language_stats_path=language_stats_path,
        )
        if args.write_documents:
            documents | "WriteDocuments" >> WriteDocuments(self.run.staging)
        if args.write_rejects:
            rejects | "WriteRejects" >> WriteRejects(self.run.staging)

    def execute(self, run_job=None) -> tuple[dict, list, dict]:
        """Run the job (``run_job(run, pipeline)`` where a pipeline reports its own failures):
        (counts, shard stats in shard order, manifest sections common to corpora)."""
        result = run_job(self.run, self.pipeline) if run_job else self.run.execute(self.pipeline)
        counts = self.run.counts(result)
        sections = {"histograms": self.run.histograms(result)}
        if self.near_dedup is not None:
            sections["near_dedup"] = near_dedup_report(self.near_dedup, counts)
        shards = sorted(read_json(self.stats_path(SHARD_STATS)), key=lambda s: s["shard"])
        return counts, shards, sections

    def publish(self, *, config: dict, counts: dict, inputs: dict, shards: list, **sections) -> dict:
        """Publish the version; a corpus with no sequence is refused (one line naming the stage that
        removed everything, nothing published) unless --allow_empty, which the config records."""
        allow_empty = bool(getattr(self.args, "allow_empty", False))
        if not allow_empty and not sum(shard["records"] for shard in shards):
            raise UsageError(f"nothing to publish: {emptied_by(counts, self.args, self.stage_flags)};"
                             " pass --allow_empty to publish an empty version")
        config = {**config, "allow_empty": allow_empty}
        manifest = self.run.manifest(dataset=self.dataset, config=config, counts=counts, inputs=inputs,
                                     shards=shards, **stream_sections(self.args, self.tokenizer), **sections)
        return self.run.publish(manifest)
