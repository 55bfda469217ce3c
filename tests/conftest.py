"""Shared fixtures: the bundled real samples and a tokenizer trained on them by the real pipeline."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_MANIFEST = ROOT / "samples" / "mono" / "manifest.jsonl"
NL_SAMPLES = ROOT / "samples" / "nl"
NL_FILES = (NL_SAMPLES / "train" / "00.jsonl.zst", NL_SAMPLES / "train" / "01.jsonl.zst",
            NL_SAMPLES / "val.jsonl.zst")


@pytest.fixture(scope="session")
def sample_manifest() -> pathlib.Path:
    return SAMPLE_MANIFEST


@pytest.fixture(scope="session")
def sample_tokenizer(tmp_path_factory) -> pathlib.Path:
    """tokenizer.model trained by ``pipelines.tokenizer`` on the samples (small vocab: fast)."""
    from pipelines import tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.main(["--source", "mono", "--input", str(SAMPLE_MANIFEST), "--output", str(out),
                    "--vocab_size", "4000"])
    return out / "tokenizer.model"


@pytest.fixture(scope="session")
def nl_files() -> tuple:
    """The real NL sample files, in The Pile's release layout."""
    return NL_FILES


@pytest.fixture(scope="session")
def nl_input() -> str:
    """``--input`` for the NL samples: a glob and a path, comma-separated."""
    return f"{NL_SAMPLES / 'train' / '*.jsonl.zst'},{NL_SAMPLES / 'val.jsonl.zst'}"


@pytest.fixture(scope="session")
def nl_tokenizer(tmp_path_factory, nl_input) -> pathlib.Path:
    """tokenizer.model trained by ``pipelines.tokenizer --source nl`` on the NL samples."""
    from pipelines import tokenizer

    out = tmp_path_factory.mktemp("nl_tokenizer")
    tokenizer.main(["--source", "nl", "--input", nl_input, "--output", str(out), "--vocab_size", "2000"])
    return out / "tokenizer.model"
