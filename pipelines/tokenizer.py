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

from pipelines import common, mono, multi, nl
from schemas.tokenizer import Tokenizer
from transforms.curation.github import CurateGithubRepos
from transforms.curation.pile import CuratePile
from transforms.streams.shuffle import shuffle_key
from transforms.stats.run_stats import WriteJson, read_json
from transforms.streams.tokenize import load_tokenizer
from transforms.streams.sentencepiece_trainer import train_sentencepiece

DATASET = "tokenizer"
MODEL_NAME = "tokenizer.model"
VOCAB_NAME = "tokenizer.vocab"
# Per corpus: its read/filter flags, and the config they give.
SOURCES = {
    "mono": (mono.add_curation_flags, mono.curation_config),
    "nl": (nl.add_read_flags, nl.read_config),
    "multi": (multi.add_read_flags, multi.read_config),
}
# The flag a run with no document left reports, per --source multi mode.
MULTI_SOURCE_FLAGS = {"snapshot": "--bigquery_snapshot", "query": "--bigquery_project",
                      "export": "--bigquery_export"}


def build_parser(source: str | None = None):
    """The flags for one --source (its read flags follow from it; none when source is None)."""
    parser = common.ArgumentParser(prog="sluice tokenizer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=tuple(SOURCES), required=True,
                        help="Which corpus reader feeds the sample (its read flags follow from it).")
    if source is not None:
        SOURCES[source][0](parser)
    parser.add_argument("--output", required=True,
                        help="The tokenizer version to publish, ROOT/DATASET/VERSION (tokenizer.model,"
                             " tokenizer.vocab, manifest.json); never overwritten.")
    parser.add_argument("--vocab_size", type=common.positive_int, default=32000)
    parser.add_argument("--sample_docs", type=common.positive_int, default=50000)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def parse_args(argv):
    # --source decides which read flags exist, so it is read first (a missing one is reported below).
    peek = common.ArgumentParser(add_help=False)
    peek.add_argument("--source", choices=tuple(SOURCES))
    source = peek.parse_known_args(argv)[0].source
    return build_parser(source).parse_known_args(argv)


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
        with FileSystems.create(common.join(self._output, MODEL_NAME)) as handle:
            handle.write(model)
        # One JSON string a line (id = line number): pieces may hold newlines and tabs.
        vocab = "".join(f"{json.dumps(tokenizer.id_to_piece(i))}\t{i}\n" for i in range(tokenizer.vocab_size))
        with FileSystems.create(common.join(self._output, VOCAB_NAME)) as handle:
            handle.write(vocab.encode("utf-8"))
        return {"documents": len(texts), "characters": sum(len(t) for t in texts),
               "vocab_size": tokenizer.vocab_size}


def main(argv=None):
    args, beam_args = parse_args(argv)
    curation = SOURCES[args.source][1](args)
    args.output = common.prepare_output(args.output)  # the staging folder, published at the end
    stats_dir = common.join(args.output, common.RUN_STATS_DIR)
    started = common.started_at()
    seed = args.seed

    pipeline = beam.Pipeline(options=common.pipeline_options(beam_args))
    multi_inputs = None
    if args.source == "mono":
        curated = pipeline | "Curate" >> CurateGithubRepos(curation)
    elif args.source == "multi":  # the query's scratch Parquet goes under stats_dir, removed on publish
        curated = multi.curate(pipeline, args, curation, stats_dir)
        multi_inputs = curated.inputs
    else:
        curated = pipeline | "Curate" >> CuratePile(curation)
        (curated.files | "AllFileReports" >> beam.combiners.ToList()
         | "WriteFileReports" >> WriteJson(common.join(stats_dir, "files.json")))
    (
        curated.documents
        | "SampleKey" >> beam.Map(lambda doc: (shuffle_key(seed, doc.id), doc.id, doc.text))
        | "Sample" >> beam.combiners.Top.Smallest(args.sample_docs)
        | "Train" >> beam.ParDo(_TrainFn(args.output, args.vocab_size, args.seed))
        | "WriteTrainStats" >> WriteJson(common.join(stats_dir, "train.json"))
    )
    result = nl.run_job(pipeline)

    model_path = common.join(args.output, MODEL_NAME)
    if not FileSystems.exists(model_path):
        flag = MULTI_SOURCE_FLAGS[curation.mode] if args.source == "multi" else "--input"
        raise common.UsageError(f"{flag}: no document passed the filters, nothing to train on")
    if args.source == "multi":
        inputs = multi_inputs
    elif args.source == "nl":
        inputs = nl.inputs_section(args.input, read_json(common.join(stats_dir, "files.json")))
    else:
        inputs = {"manifest": common.file_sha256(args.input)}
    return common.publish_manifest(
        args.output,
        dataset=DATASET,
        started=started,
        config={"source": args.source, "curation": dataclasses.asdict(curation),
                "vocab_size": args.vocab_size, "sample_docs": args.sample_docs, "seed": args.seed},
        counts=common.counts_from_metrics(result),
        inputs=inputs,
        tokenizer={**common.file_sha256(model_path),
                   "vocab_size": load_tokenizer(model_path).vocab_size},
        sample=read_json(common.join(stats_dir, "train.json")),
        shards=[],
    )


def run(argv=None) -> int:
    return common.run_main(main, argv)


if __name__ == "__main__":
    raise SystemExit(run())
