"""Train the corpus tokenizer: a SentencePiece BPE model for code, from a deterministic sample.

    python -m pipelines.tokenizer --source mono --input MANIFEST.jsonl --output DIR \
        [--vocab_size N] [--sample_docs N] [--seed S] [any flag of the mono read/filter stages]
    python -m pipelines.tokenizer --source nl --input 'PILE/train/*.jsonl.zst' --output DIR \
        [...] [any flag of the nl read/filter stages: --include_sets, --on_damage, ...]
    python -m pipelines.tokenizer --source multi --bigquery_snapshot DIR --output DIR \
        [...] [any flag of the multi read/filter stages: --languages, --licenses, --min_stars, ...]

The documents go through the same read and filter stages as the corpus itself (exact dedup
included, so a file vendored a thousand times does not weigh a thousand times): the GitHub
curation for ``--source mono``, the Pile reader and set filter for ``--source nl``, the Multi
query (snapshot, live or export), row rules and code quality filter for ``--source multi``. The
sample is the ``--sample_docs`` documents with the smallest ``hash(seed, id)``: the same whatever
the worker count, and a bounded set (the only thing gathered on one worker, where SentencePiece
trains).
Writes ``DIR/tokenizer.model``, ``DIR/tokenizer.vocab`` and ``DIR/manifest.json`` (last).
"""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines import mono, multi, nl
from pipelines.driver import ArgumentParser, UsageError, parse_pipeline_args, pipeline_options, positive_int
from pipelines.driver import run_main
from pipelines.manifests import file_sha256
from pipelines.run import RUN, Run, RunMode
from schemas.files import join
from schemas.tokenizer import Tokenizer
from transforms.curation.github import CurateGithubRepos
from transforms.curation.pile import CuratePile
from transforms.stats.run_stats import ArchiveFingerprintFn, WriteJson, read_json
from transforms.streams.sentencepiece_trainer import train_sentencepiece
from transforms.streams.shuffle import shuffle_key
from transforms.streams.tokenize import load_tokenizer

DATASET = "tokenizer"
MODEL_NAME = "tokenizer.model"
VOCAB_NAME = "tokenizer.vocab"


class MonoSource:
    """``--source mono``: the GitHub curation of ``pipelines.mono``."""

    add_flags = staticmethod(mono.add_curation_flags)

    def __init__(self, args, mode: RunMode):
        self.args = args
        self.config = mono.curation_config(args)
        self.empty_flag = "--input"  # the flag a run with no document left names
        self._archives: dict | None = None  # the archives' fingerprint and loss gate, after the job

    def curate(self, pipeline, run: Run):
        curated = pipeline | "Curate" >> CurateGithubRepos(self.config)
        (curated.archives | "Fingerprint" >> beam.CombineGlobally(ArchiveFingerprintFn())
         | "WriteArchiveStats" >> WriteJson(run.stats_path("archives.json")))
        curated.unreadable | "WriteUnreadable" >> WriteJson(run.stats_path(mono.UNREADABLE_STATS))
        return curated.documents

    def check(self, run: Run, counts: dict) -> None:
        """Mono's loss gate: too many archives unreadable after retries fails the run unpublished."""
        self._archives = read_json(run.stats_path("archives.json"))
        self._archives["loss_gate"] = mono.check_unreadable(
            self.args, counts, self._archives, read_json(run.stats_path(mono.UNREADABLE_STATS)))

    def inputs(self, run: Run) -> dict:
        return {"manifest": file_sha256(self.args.input), "archives": self._archives}


class NLSource:
    """``--source nl``: the Pile reader and set filter of ``pipelines.nl``."""

    add_flags = staticmethod(nl.add_read_flags)

    def __init__(self, args, mode: RunMode):
        self.args = args
        self.config = nl.read_config(args)
        self.empty_flag = "--input"

    def curate(self, pipeline, run: Run):
        curated = pipeline | "Curate" >> CuratePile(self.config)
        (curated.files | "AllFileReports" >> beam.combiners.ToList()
         | "WriteFileReports" >> WriteJson(run.stats_path("files.json")))
        return curated.documents

    def inputs(self, run: Run) -> dict:
        return nl.inputs_section(self.args.input, read_json(run.stats_path("files.json")))


class MultiSource:
    """``--source multi``: the query (snapshot, live or export), row rules and quality filter of
    ``pipelines.multi``; the query's scratch Parquet goes under the run's statistics, removed on publish."""

    add_flags = staticmethod(multi.add_read_flags)
    EMPTY_FLAGS = {"snapshot": "--bigquery_snapshot", "query": "--bigquery_project", "export": "--bigquery_export"}

    def __init__(self, args, mode: RunMode, bigquery_client=None):
        self.args = args
        self.config = multi.read_config(args, mode)
        self.empty_flag = self.EMPTY_FLAGS[self.config.mode]
        self._inputs: dict | None = None
        self._client = bigquery_client  # the live query's client (None: connect with default credentials)
        multi.stop_if_dry_run_only(args, self.config, bigquery_client)  # before the version is claimed

    def curate(self, pipeline, run: Run):
        curated, self._inputs = multi.curate(pipeline, self.args, self.config, run.stats_dir, self._client)
        return curated.documents

    def inputs(self, run: Run) -> dict:
        return self._inputs


SOURCES = {"mono": MonoSource, "nl": NLSource, "multi": MultiSource}


def build_parser(source: str | None = None):
    """The flags for one --source (its read flags follow from it; none when source is None)."""
    parser = ArgumentParser(prog="sluice tokenizer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=tuple(SOURCES), required=True,
                        help="Which corpus reader feeds the sample (its read flags follow from it).")
    if source is not None:
        SOURCES[source].add_flags(parser)
    parser.add_argument("--output", required=True,
                        help="The tokenizer version to publish, ROOT/DATASET/VERSION (tokenizer.model,"
                             " tokenizer.vocab, manifest.json); never overwritten.")
    parser.add_argument("--vocab_size", type=positive_int, default=32000)
    parser.add_argument("--sample_docs", type=positive_int, default=50000)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def parse_args(argv):
    # --source decides which read flags exist, so it is read first (a missing one is reported below).
    peek = ArgumentParser(add_help=False)
    peek.add_argument("--source", choices=tuple(SOURCES))
    source = peek.parse_known_args(argv)[0].source
    return parse_pipeline_args(build_parser(source), argv)


class _TrainFn(beam.DoFn):
    """Trains on the sampled texts (in sample order) and writes the model files."""

    def __init__(self, output, vocab_size, seed):
        self._output = output
        self._vocab_size = vocab_size
        self._seed = seed

    def process(self, sample):
        texts = [text for _, _, text in sorted(sample)]
        if texts:  # else nothing passed the filters: the driver reports it
            yield self._train(texts)

    def _train(self, texts):
        try:
            model = train_sentencepiece(texts, self._vocab_size, seed=self._seed)
        except RuntimeError as err:
            raise RuntimeError(
                f"SentencePiece training failed with --vocab_size {self._vocab_size} on "
                f"{len(texts)} documents ({err}); a smaller --vocab_size or more text is needed"
            ) from None
        tokenizer = Tokenizer(model)
        with FileSystems.create(join(self._output, MODEL_NAME)) as handle:
            handle.write(model)
        # One JSON string a line (id = line number): pieces may hold newlines and tabs.
        vocab = "".join(f"{json.dumps(tokenizer.id_to_piece(i))}\t{i}\n" for i in range(tokenizer.vocab_size))
        with FileSystems.create(join(self._output, VOCAB_NAME)) as handle:
            handle.write(vocab.encode("utf-8"))
        return {"documents": len(texts), "characters": sum(len(t) for t in texts),
               "vocab_size": tokenizer.vocab_size}


def main(argv=None, mode=RUN, bigquery_client=None):
    """``bigquery_client``: the client ``--source multi``'s live query is sent with (None: connect)."""
    args, beam_args = parse_args(argv)
    source = (MultiSource(args, mode, bigquery_client) if args.source == "multi"  # the one source that queries
              else SOURCES[args.source](args, mode))
    with Run(args.output, mode) as run:
        pipeline = beam.Pipeline(options=pipeline_options(beam_args))
        seed = args.seed
        (
            source.curate(pipeline, run)
            | "SampleKey" >> beam.Map(lambda doc: (shuffle_key(seed, doc.id), doc.id, doc.text))
            | "Sample" >> beam.combiners.Top.Smallest(args.sample_docs)
            | "Train" >> beam.ParDo(_TrainFn(run.staging, args.vocab_size, args.seed))
            | "WriteTrainStats" >> WriteJson(run.stats_path("train.json"))
        )
        result = nl.run_job(run, pipeline)
        if hasattr(source, "check"):
            source.check(run, run.counts(result))
        model_path = join(run.staging, MODEL_NAME)
        if not FileSystems.exists(model_path):
            raise UsageError(f"{source.empty_flag}: no document passed the filters, nothing to train on")
        return run.publish(run.manifest(
            dataset=DATASET,
            config={"source": args.source, "curation": dataclasses.asdict(source.config),
                    "vocab_size": args.vocab_size, "sample_docs": args.sample_docs, "seed": args.seed},
            counts=run.counts(result), inputs=source.inputs(run),
            tokenizer={**file_sha256(model_path), "vocab_size": load_tokenizer(model_path).vocab_size},
            sample=read_json(run.stats_path("train.json")), shards=[]))


def run(argv=None, mode=RUN) -> int:
    return run_main(main, argv, mode=mode)


if __name__ == "__main__":
    raise SystemExit(run())
