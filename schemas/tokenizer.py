"""Load a Sluice SentencePiece model and encode/decode code with it, byte for byte.

Beam-free, so training jobs and pipeline workers share one implementation. Models come from
``transforms.streams.sentencepiece_trainer.train_sentencepiece``; the ids of the special tokens are fixed
by ``schemas.tokens`` and checked on load.

Why a wrapper instead of a bare ``SentencePieceProcessor``: SentencePiece stores spaces as
U+2581 ("▁") and decodes every U+2581 back to a space, so text that contains a literal U+2581
would not survive a round trip. ``encode`` emits the literal character as its three UTF-8 byte
pieces instead, which decode back to U+2581.
"""

from __future__ import annotations

from typing import Iterable, Union

import numpy as np
import sentencepiece as spm

from schemas import tokens

SP_SPACE = "\u2581"  # how SentencePiece writes a space inside pieces


class Tokenizer:
    """A trained model; ``decode(encode(text)) == text`` for every str that is valid UTF-8."""

    def __init__(self, model_proto: bytes):
        self._model_proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor(model_proto=self._model_proto)
        self._check_layout()
        # U+2581 as byte-fallback pieces (see the module docstring).
        self._sp_space_ids = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in SP_SPACE.encode("utf-8")]

    @classmethod
    def from_file(cls, path: str) -> "Tokenizer":
        with open(path, "rb") as f:
            return cls(f.read())

    def _check_layout(self) -> None:
        sp = self._sp
        for i, token in enumerate(tokens.SPECIAL_TOKENS):
            if sp.id_to_piece(i) != token or not (sp.is_control(i) or sp.is_unknown(i)):
                raise ValueError(f"not a Sluice tokenizer: id {i} is {sp.id_to_piece(i)!r}, want {token!r}")
        if sp.pad_id() != tokens.PAD_ID or sp.eos_id() != tokens.END_OF_TEXT_ID:
            raise ValueError("not a Sluice tokenizer: pad/eos ids differ from schemas.tokens")
        if not sp.is_byte(sp.piece_to_id("<0xE2>")):
            raise ValueError("not a Sluice tokenizer: no byte fallback")

    @property
    def model_proto(self) -> bytes:
        """The serialized model, as written by the trainer."""
        return self._model_proto

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def eot_id(self) -> int:
        return tokens.END_OF_TEXT_ID

    @property
    def pad_id(self) -> int:
        return tokens.PAD_ID

    @property
    def unk_id(self) -> int:
        return tokens.UNKNOWN_ID

    def language_tag_id(self, language: str) -> int:
        """Id of the tag token of ``language`` (a key of ``tokens.LANGUAGE_TAGS``)."""
        return self._sp.piece_to_id(tokens.LANGUAGE_TAGS[language])

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; never a control id (EOT, pad, language tags) and never unk.

        Raises UnicodeEncodeError for a str that is not valid UTF-8 (lone surrogates).
        """
        if SP_SPACE not in text:
            return self._encode(text)
        ids: list[int] = []
        for i, part in enumerate(text.split(SP_SPACE)):
            if i:
                ids.extend(self._sp_space_ids)
            if part:
                ids.extend(self._encode(part))
        return ids

    def _encode(self, text: str) -> list[int]:
        try:
            return self._sp.encode_as_ids(text)
        except RuntimeError:
            text.encode("utf-8")  # SentencePiece's error does not say why; this one does
            raise

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as an int32 array, the dtype of the packed streams."""
        return np.asarray(self.encode(text), dtype=np.int32)

    def decode(self, ids: Union[Iterable[int], np.ndarray]) -> str:
        """Text of ``ids``. Control tokens (EOT, pad, language tags) decode to nothing."""
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        return self._sp.decode_ids(list(ids))

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(i)

    # Beam ships DoFns pickled; the processor itself does not pickle, its model bytes do.
    def __getstate__(self) -> dict:
        return {"model_proto": self._model_proto}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_proto"])
