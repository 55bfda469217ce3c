"""Shared fixtures: the bundled real samples and a tokenizer trained on them by the real pipeline."""

from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_MANIFEST = ROOT / "samples" / "mono" / "manifest.jsonl"


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
