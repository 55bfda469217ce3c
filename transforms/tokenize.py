"""Tokenize documents with the corpus's SentencePiece model, loaded once per worker in setup().

The model is read from its path (local or any Beam filesystem) in ``setup``, not captured by the
DoFn, so Beam never pickles it into the job graph. Tokens travel as little-endian int32 bytes, the
compact form the shuffle moves and the packer views without copying.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from schemas.records import TokenizedDocument
from schemas.tokenizer import Tokenizer
from transforms.counting import KEPT, count

STAGE = "tokenize"


def load_tokenizer(path: str) -> Tokenizer:
    """A Tokenizer from a model file on any Beam filesystem."""
    with FileSystems.open(path) as handle:
        return Tokenizer(handle.read())


class _TokenizeFn(beam.DoFn):
    def __init__(self, model_path: str, prefix_language_tag: bool):
        self._model_path = model_path
        self._prefix_language_tag = prefix_language_tag
        self._tokenizer = None

    def setup(self):
        self._tokenizer = load_tokenizer(self._model_path)

    def process(self, doc):
        ids = self._tokenizer.encode_array(doc.text)
        if self._prefix_language_tag:
            import numpy as np

            tag = np.array([self._tokenizer.language_tag_id(doc.language)], dtype=np.int32)
            ids = np.concatenate([tag, ids])
        count(STAGE, KEPT)
        count(STAGE, "tokens", int(ids.size))
        yield TokenizedDocument(id=doc.id, tokens=ids.astype("<i4", copy=False).tobytes())


class Tokenize(beam.PTransform):
    """Documents -> TokenizedDocuments; optionally prefixed with the language-tag token (Multi)."""

    def __init__(self, model_path: str, prefix_language_tag: bool = False):
        super().__init__()
        self._fn = _TokenizeFn(model_path, prefix_language_tag)

    def expand(self, docs):
        return docs | beam.ParDo(self._fn)
