"""The ``sluice`` command: ``sluice NAME [flags]`` is ``python -m pipelines.NAME [flags]``."""

from __future__ import annotations

import importlib
import sys

# Every command, with its line in ``sluice --help``.
PIPELINES = {
    "datasets": "Dataset versions: list ROOT, show V, diff V1 V2, verify V, tag V ALIAS, resolve P, gc ROOT/D.",
    "github_manifest": "Build a Mono manifest (repositories, licenses, stars, archive URLs) from github_repos.",
    "instruct": "Instruction-tuning mixtures (FLAN): task registry to packed streams per held-out split.",
    "mono": "The Mono corpus: GitHub Python archives to packed streams.",
    "multi": "The Multi corpus: GitHub files in six languages (BigQuery SQL) to packed streams.",
    "nl": "The NL corpus: The Pile's JSON Lines files to packed streams.",
    "report": "Write a self-contained HTML report (charts) of one dataset version.",
    "tokenizer": "Train the SentencePiece tokenizer on a corpus sample.",
}
# The pipelines that run as Dataflow Flex Templates, in CodeGen's launch order (see the DAG), with
# each template's description (dataflow_templates/generate.py writes their metadata from these).
TEMPLATES = {
    "tokenizer": "Sluice tokenizer: a SentencePiece BPE model trained on a deterministic corpus sample.",
    "nl": "Sluice NL corpus: The Pile's JSON Lines release to packed TFRecord and Arrow streams.",
    "multi": "Sluice Multi corpus: GitHub files in six languages (one BigQuery SQL query) to packed streams.",
    "mono": "Sluice Mono corpus: permissively licensed GitHub Python repositories to packed streams.",
    "instruct": "Sluice instruction mixtures (FLAN): task registry to packed streams per held-out split.",
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in PIPELINES:
        width = max(map(len, PIPELINES))
        lines = [f"  {name:<{width}} {text}" for name, text in PIPELINES.items()]
        print("usage: sluice PIPELINE [flags]   (sluice PIPELINE --help)\n\npipelines:\n" + "\n".join(lines))
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown pipeline {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(f"pipelines.{argv[0]}")
    return module.run(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
