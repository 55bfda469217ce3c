"""The tokenizer pipeline on the real samples: a valid model that round-trips every sample file."""

from __future__ import annotations

import json

from schemas import manifest as manifest_schema
from schemas import tokens
from schemas.tokenizer import Tokenizer
from transforms.archive_reader import decode_source
from transforms.archive_stream import ArchiveLimits, iter_members


def sample_texts(sample_manifest):
    """Every text file of every sample archive, Python or not."""
    texts = {}
    for archive in sorted((sample_manifest.parent / "archives").glob("*.tar.gz")):
        for member in iter_members(str(archive), ArchiveLimits()):
            if member.data is not None:
                text, reason = decode_source(member.data)
                if reason is None:
                    texts[f"{archive.name}:{member.path}"] = text
    return texts


def test_round_trip_byte_for_byte_on_every_sample_file(sample_manifest, sample_tokenizer):
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    texts = sample_texts(sample_manifest)
    assert len(texts) > 700
    control = {tokens.PAD_ID, tokens.UNKNOWN_ID, tokens.END_OF_TEXT_ID}
    for name, text in texts.items():
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids).encode("utf-8") == text.encode("utf-8"), name
        assert not control.intersection(ids), name


def test_model_layout_and_manifest(sample_tokenizer):
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    assert tokenizer.vocab_size == 4000
    assert tokenizer.id_to_piece(tokenizer.eot_id) == tokens.END_OF_TEXT
    assert tokenizer.language_tag_id("python") != tokenizer.language_tag_id("java")
    manifest = json.loads((sample_tokenizer.parent / "manifest.json").read_text())
    manifest_schema.validate(manifest)
    assert manifest["tokenizer"]["vocab_size"] == 4000
    assert manifest["sample"]["documents"] == manifest["counts"]["exact_dedup"]["kept"]
    assert manifest["counts"]["license"]["license_not_allowed"] == 2
    assert (sample_tokenizer.parent / "tokenizer.vocab").read_text().count("\n") == 4000


def test_indentation_uses_whitespace_run_tokens(sample_tokenizer):
    tokenizer = Tokenizer(sample_tokenizer.read_bytes())
    ids = tokenizer.encode("def f():\n        return 1\n")
    pieces = [tokenizer.id_to_piece(i) for i in ids]
    assert "\u2581" * 8 in pieces
