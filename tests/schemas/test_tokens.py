"""Special-token constants and the Beam-free Tokenizer wrapper that training jobs load."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from schemas import tokens
from schemas.tokenizer import Tokenizer
from transforms.streams.sentencepiece_trainer import train_sentencepiece

STDLIB = Path(os.__file__).parent


@pytest.fixture(scope="module")
def model() -> bytes:
    texts = [p.read_text(encoding="utf-8") for p in sorted(STDLIB.glob("*.py"))[:12]]
    return train_sentencepiece(texts, 1000)


def test_constants():
    assert tokens.END_OF_TEXT == "<|endoftext|>"
    assert tokens.LANGUAGE_TAGS == {
        "python": "<|python|>",
        "java": "<|java|>",
        "javascript": "<|javascript|>",
        "go": "<|go|>",
        "c": "<|c|>",
        "cpp": "<|cpp|>",
    }
    assert len(set(tokens.SPECIAL_TOKENS)) == len(tokens.SPECIAL_TOKENS) == 9
    assert tokens.SPECIAL_TOKENS[tokens.END_OF_TEXT_ID] == tokens.END_OF_TEXT
    assert tokens.SPECIAL_TOKENS[tokens.PAD_ID] == tokens.PAD
    assert tokens.SPACE_RUNS[0] == "  " and tokens.SPACE_RUNS[-1] == " " * tokens.MAX_SPACE_RUN
    assert tokens.TAB_RUNS[0] == "\t" and tokens.TAB_RUNS[-1] == "\t" * tokens.MAX_TAB_RUN


def test_tokenizer_api(model, tmp_path):
    tok = Tokenizer(model)
    assert tok.vocab_size == 1000
    tag_ids = [tok.language_tag_id(lang) for lang in tokens.LANGUAGE_TAGS]
    assert tag_ids == list(range(3, 3 + len(tokens.LANGUAGE_TAGS)))
    assert tok.eot_id not in tag_ids and tok.pad_id not in tag_ids
    with pytest.raises(KeyError):
        tok.language_tag_id("cobol")

    text = "def f(x):\n\treturn x  # ok 🙂\n"
    arr = tok.encode_array(text)
    assert arr.dtype == np.int32 and arr.tolist() == tok.encode(text)
    assert tok.decode(arr) == text
    assert tok.decode(np.concatenate([arr, [tok.eot_id, tok.pad_id]]).astype(np.int32)) == text

    path = tmp_path / "tok.model"
    path.write_bytes(model)
    assert Tokenizer.from_file(str(path)).encode(text) == tok.encode(text)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.encode(text) == tok.encode(text) and clone.model_proto == model


def test_rejects_a_model_not_built_by_the_trainer():
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["a b c d e f g h i j k l m n o p"] * 50), model_writer=out, vocab_size=40,
        hard_vocab_limit=False, minloglevel=2,
    )
    with pytest.raises(ValueError, match="not a Sluice tokenizer"):
        Tokenizer(out.getvalue())
