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
from transforms.stats.counting import KEPT, count
from transforms.stats import histograms

STAGE = "tokenize"
LANGUAGES = "languages"  # tagged output: (language, (documents, UTF-8 bytes, tokens)) per document


def load_tokenizer(path: str) -> Tokenizer:
    """A Tokenizer from a model file on any Beam filesystem."""
    with FileSystems.open(path) as handle:
        return Tokenizer(handle.read())


class _TokenizeFn(beam.DoFn):
    def __init__(self, model_path: str, prefix_language_tag: bool, tally_languages: bool = False):
        self._model_path = model_path
        self._prefix_language_tag = prefix_language_tag
        self._tally_languages = tally_languages
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
        nbytes = len(doc.text.encode("utf-8"))
        histograms.observe(histograms.DOCUMENT_BYTES_KEPT, nbytes)
        if self._tally_languages:
            yield beam.pvalue.TaggedOutput(LANGUAGES, (doc.language, (1, nbytes, int(ids.size))))
        yield TokenizedDocument(id=doc.id, tokens=ids.astype("<i4", copy=False).tobytes())


class Tokenize(beam.PTransform):
    """Documents -> TokenizedDocuments; optionally prefixed with the language-tag token (Multi).

    With ``tally_languages`` it returns ``(tokenized, tallies)``: one small
    ``(language, (1, bytes, tokens))`` per document for a combiner to sum, since a
    TokenizedDocument no longer carries its language (tokens include the tag when prefixed).
    """

    def __init__(self, model_path: str, prefix_language_tag: bool = False, tally_languages: bool = False):
        super().__init__()
        self._tally_languages = tally_languages
        self._fn = _TokenizeFn(model_path, prefix_language_tag, tally_languages)

    def expand(self, docs):
        if not self._tally_languages:
            return docs | beam.ParDo(self._fn)
        outputs = docs | beam.ParDo(self._fn).with_outputs(LANGUAGES, main="tokenized")
        return outputs["tokenized"], outputs[LANGUAGES]
