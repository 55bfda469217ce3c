#!/usr/bin/env python3
"""Build the instruction-tuning samples: the first rows of each real task dataset, byte for byte.

``samples/instruct/<dataset>/<split file>.jsonl`` holds the first ``rows`` lines of the same file in
the license-checked task datasets (``/work/shared/data/instruct/``, whose SOURCES.md gives the
upstream repositories and commits), unedited; ``samples/instruct/SOURCES.md`` is generated here
with each dataset's source, license notice and what was taken. ``samples/instruct/tasks.yaml``
(hand-written: the templates) names them as tasks for ``pipelines.instruct``.

Usage:
    python samples/build_instruct_samples.py [--data /work/shared/data/instruct]   # build
    python samples/build_instruct_samples.py --check [--data ...]                  # verify only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import build_samples  # samples/build_samples.py, beside this script

HERE = Path(__file__).resolve().parent
OUT = HERE / "instruct"
DEFAULT_DATA = Path("/work/shared/data/instruct")
MAX_TOTAL_BYTES = 2 << 20
TRAIN_ROWS, EVAL_ROWS = 200, 50

# dataset: (upstream, license notice, {file: rows}, evaluation-only note or "")
DATASETS = {
    "web_questions": ("github.com/brmson/dataset-factoid-webquestions @ 6688908", "CC BY 4.0 (Berant et al. 2013)",
                      {"train.jsonl": TRAIN_ROWS, "validation.jsonl": EVAL_ROWS}, ""),
    "codah": ("github.com/Websail-NU/CODAH @ acf7ffa (fold_0 train/dev)", "ODC-BY 1.0",
              {"train.jsonl": TRAIN_ROWS, "validation.jsonl": EVAL_ROWS}, ""),
    "strategyqa": ("github.com/eladsegal/strategyqa @ 1ba1e97 (authors' unofficial train/dev split)", "MIT",
                   {"train.jsonl": TRAIN_ROWS, "validation.jsonl": EVAL_ROWS}, ""),
    "poem_sentiment": ("github.com/google-research-datasets/poem-sentiment @ 612e9a1", "CC BY 4.0",
                       {"train.jsonl": TRAIN_ROWS, "validation.jsonl": EVAL_ROWS}, ""),
    "gap": ("github.com/google-research-datasets/gap-coreference @ 83135f2 (development -> train)", "Apache-2.0",
            {"train.jsonl": TRAIN_ROWS, "validation.jsonl": EVAL_ROWS}, ""),
    "scitldr": ("github.com/allenai/scitldr @ 5ccad9c (SciTLDR-A)", "Apache-2.0",
                {"train.jsonl": TRAIN_ROWS // 2, "validation.jsonl": EVAL_ROWS}, ""),
    "gsm8k": ("github.com/openai/grade-school-math @ 3101c7d", "MIT",
              {"train.jsonl": TRAIN_ROWS, "test.jsonl": EVAL_ROWS}, "test split: evaluation only"),
    "e_snli": ("github.com/OanaMariaCamburu/e-SNLI @ 7b585a3 (dev)", "MIT (e-SNLI) over SNLI, CC BY-SA 4.0",
               {"validation.jsonl": 100}, "SNLI dev: evaluation only"),
    "xquad_en": ("github.com/google-deepmind/xquad @ 7d30520 (xquad.en.json)", "CC BY-SA 4.0",
                 {"validation.jsonl": 100}, "SQuAD v1.1 dev subset: evaluation only"),
    "nq_open": ("github.com/google-research-datasets/natural-questions @ fb26a30 (NQ-open dev)", "CC BY-SA 3.0",
                {"validation.jsonl": 100}, "NQ-open dev: evaluation only"),
    "piqa": ("github.com/ybisk/ybisk.github.io @ 21edab4 (piqa valid + labels)", "AFL-3.0",
             {"validation.jsonl": 100}, "PIQA validation: evaluation only"),
    "cosmos_qa": ("github.com/wilburOne/cosmosqa @ b6eb99c (valid.csv)", "CC BY 4.0",
                  {"validation.jsonl": 100}, "Cosmos QA validation: evaluation only"),
    "sts2016_postediting": ("github.com/brmson/dataset-sts @ e1d3375 (SemEval-2016 STS post-editing, scored pairs)",
                            "CC BY 4.0 (EAMT11 data, L. Specia)", {"test.jsonl": 100},
                            "SemEval-2016 test: evaluation only"),
    "wsc": ("github.com/qiaobaochen/Winograd-Schema-Challenge @ 5e8d4ec (WSCollection.xml, E. Davis)", "CC BY 4.0",
            {"test.jsonl": 100}, "Winograd Schema Challenge: evaluation only"),
    "dart": ("github.com/Yale-LILY/dart @ bb644b1 (v1.1.1 dev, WebNLG rows removed)", "MIT",
             {"validation.jsonl": 100}, "DART dev: evaluation only"),
    "e2e_nlg": ("github.com/tuetschek/e2e-dataset @ ab0d967 (devset.csv)", "CC BY-SA 4.0",
                {"validation.jsonl": 100}, "E2E dev: evaluation only"),
    "ntrex128": ("github.com/MicrosoftTranslator/NTREX @ 8561f6a (NTREX-128 newstest2019 refs)", "CC BY-SA 4.0",
                 {"test.jsonl": 100}, "WMT19 news test: evaluation only"),
    "aqua_rat": ("github.com/google-deepmind/AQuA @ 26b64ed (dev.json)", "Apache-2.0",
                 {"validation.jsonl": 100}, "AQuA dev: evaluation only"),
}


def first_lines(path: Path, rows: int) -> bytes:
    with path.open("rb") as handle:
        lines = []
        for line in handle:
            lines.append(line)
            if len(lines) == rows:
                break
    if len(lines) < rows:
        raise ValueError(f"{path} has {len(lines)} lines, fewer than {rows}")
    return b"".join(lines)


def sources_md(sizes: dict) -> str:
    out = [
        "# Instruction-tuning samples (`samples/instruct/`)",
        "",
        "Generated by `samples/build_instruct_samples.py`; edit that script. Each file holds the first",
        "rows of the same file in the license-checked task datasets (`/work/shared/data/instruct/`,",
        "whose SOURCES.md gives each upstream repository, commit, field names and transformation),",
        "byte for byte: no text, label or field is edited. `tasks.yaml` names them as tasks.",
        "",
        "**Evaluation data.** The datasets marked *evaluation only* are standard benchmark evaluation",
        "splits. `tasks.yaml` gives them only an `eval` split, so they are never part of a training",
        "mixture: they serve as held-out tasks (FLAN's leave-one-cluster-out evaluation) and as",
        "decontamination texts. A model trained on other copies of them must not report them as held out.",
        "",
        "**Licenses.** CC BY and CC BY-SA data require attribution (this file is it); CC BY-SA requires",
        "derivatives under the same license; Apache-2.0 data keeps its notice (below); MIT, ODC-BY and",
        "AFL-3.0 require keeping the copyright/license notice, which the upstream repositories hold.",
        "No non-commercial data is included.",
        "",
        "| dataset | upstream | license | files (rows) | bytes | use |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    for name, (upstream, license_, files, note) in DATASETS.items():
        shipped = ", ".join(f"`{f}` ({rows})" for f, rows in files.items())
        nbytes = sum(sizes[(name, f)] for f in files)
        out.append(f"| {name} | {upstream} | {license_} | {shipped} | {nbytes} | {note or 'train and eval'} |")
    out += [
        "",
        f"Total: {sum(sizes.values())} bytes.",
        "",
        "Apache-2.0 notice (gap, scitldr, aqua_rat): licensed under the Apache License, Version 2.0",
        "(http://www.apache.org/licenses/LICENSE-2.0); distributed on an \"AS IS\" basis, without",
        "warranties or conditions of any kind.",
        "",
        "The code tasks (`code_docstring_to_function`, `code_function_to_docstring`) read no file here:",
        "they are Python functions with docstrings extracted from the Mono samples (`samples/mono/`,",
        "licenses in `samples/SOURCES.md`) after the Mono license, quality and dedup filters.",
        "",
    ]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the instruct datasets folder")
    parser.add_argument("--check", action="store_true", help="verify only; no writes")
    args = parser.parse_args(argv)

    problems, sizes = [], {}
    for name, (_, _, files, _) in DATASETS.items():
        for file_name, rows in files.items():
            want = first_lines(args.data / name / file_name, rows)
            path = OUT / name / file_name
            sizes[(name, file_name)] = len(want)
            if args.check:
                if not path.exists() or path.read_bytes() != want:
                    problems.append(f"instruct/{name}/{file_name} is missing or differs")
            elif not path.exists() or path.read_bytes() != want:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(want)
                print(f"wrote instruct/{name}/{file_name}")
    if sum(sizes.values()) > MAX_TOTAL_BYTES:
        problems.append(f"instruct samples total {sum(sizes.values())} bytes, over {MAX_TOTAL_BYTES}")
    if build_samples.sync_file(OUT / "SOURCES.md", sources_md(sizes), check=args.check, problems=problems,
                               label="instruct/SOURCES.md"):
        print("wrote instruct/SOURCES.md")
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
