"""Tokenize in a pipeline with a small model trained on a real sample archive: token ids are the
tokenizer's, little-endian int32, optionally prefixed with the language tag; tokens are counted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas import tokens
from schemas.records import Document
from schemas.tokenizer import Tokenizer
from transforms.sources.archive_reader import decode_source
from transforms.sources.archive_stream import ArchiveLimits, iter_members
from transforms.streams.sentencepiece_trainer import train_sentencepiece
from transforms.streams.tokenize import Tokenize, load_tokenizer

ARCHIVES = Path(__file__).resolve().parents[3] / "samples" / "mono" / "archives"


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    out = {}
    for member in iter_members(str(ARCHIVES / "tomli-2.0.1.tar.gz"), ArchiveLimits()):
        text, reason = decode_source(member.data)
        if reason is None:
            out[member.path] = text
    assert len(out) == 9
    return out


@pytest.fixture(scope="module")
def model_path(texts, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "code.model"
    path.write_bytes(train_sentencepiece(list(texts.values()), 1000))
    return str(path)


def _doc(path: str, text: str, language: str = "python") -> Document:
    return Document(id=f"hukkin/tomli:{path}", repo_name="hukkin/tomli", path=path, text=text,
                    sha256=hashlib.sha256(text.encode()).hexdigest(), stars=400, license="MIT",
                    license_source="detected", license_confidence=1.0, ref=None, language=language)


def test_load_tokenizer(model_path):
    tok = load_tokenizer(model_path)
    assert tok.vocab_size == 1000
    assert tok.model_proto == Path(model_path).read_bytes()


def test_tokenize_pipeline(texts, model_path, beam_helpers):
    new_pipeline, run, counters = beam_helpers
    tok = Tokenizer(Path(model_path).read_bytes())
    docs = [_doc(path, text) for path, text in texts.items()]
    docs.append(_doc("weird.py", "x = '<|endoftext|>'  # \u2581 caf\u00e9 \U0001f642\n"))
    docs.append(_doc("Main.java", "class Main {}\n", language="java"))
    plain = [(d.id, tok.encode_array(d.text)) for d in docs]
    assert all(ids.size for _, ids in plain)
    assert all(tokens.END_OF_TEXT_ID not in ids for _, ids in plain)
    python_tag = tok.language_tag_id("python")
    java_tag = tok.language_tag_id("java")
    assert python_tag != java_tag and tok.id_to_piece(java_tag) == tokens.LANGUAGE_TAGS["java"]

    def decoded(tokenized):
        return tokenized.id, np.frombuffer(tokenized.tokens, dtype="<i4").tolist()

    p = new_pipeline()
    pdocs = p | beam.Create(docs)
    untagged = pdocs | "Plain" >> Tokenize(model_path)
    tagged = pdocs | "Tagged" >> Tokenize(model_path, prefix_language_tag=True)
    assert_that(untagged | "DecodePlain" >> beam.Map(decoded),
                equal_to([(i, ids.tolist()) for i, ids in plain]), label="plain")
    assert_that(
        tagged | "DecodeTagged" >> beam.Map(decoded),
        equal_to([(i, [java_tag if i.endswith(".java") else python_tag] + ids.tolist())
                  for i, ids in plain]),
        label="tagged")
    # The bytes decode back to each document's text.
    texts_by_id = {d.id: d.text for d in docs}
    assert_that(
        untagged | beam.Filter(lambda t: tok.decode(np.frombuffer(t.tokens, dtype="<i4")) != texts_by_id[t.id]),
        equal_to([]), label="round_trip")
    result = run(p)
    total = sum(ids.size for _, ids in plain)
    assert counters(result, "tokenize") == {"kept": 2 * len(docs), "tokens": 2 * total + len(docs)}
